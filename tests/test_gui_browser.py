"""The web GUI in real headless Chromium (Debian chromium + chromium-driver, selenium)
against a real ``dcs serve`` on 127.0.0.1: detector list and search, a store's timelines,
an image, a comparison of two versions, login, a change seen in history, and refusals
without login and without ACL rights."""
from __future__ import annotations

import pytest

pytest.importorskip("starlette", reason="needs the server extra")
pytest.importorskip("python_multipart", reason="needs python-multipart (extra gui)")
pytest.importorskip("matplotlib", reason="needs the plot extra")

from pscalib.gui.browser import browser_available, headless_chromium  # noqa: E402

_missing = browser_available()
if _missing:
    pytest.skip(f"headless browser tests need {_missing} (installed by .ci/run)",
                allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from conftest import file_digest  # noqa: E402
from gui_helpers import PASSWORDS, gui_config  # noqa: E402
from pscalib import DCStore  # noqa: E402
from pscalib.demo import build_demo  # noqa: E402
from pscalib.gui.app import HAS_STATES  # noqa: E402
from serve_helpers import Served  # noqa: E402

R1 = "20240110T000000Z_20240301T000000Z"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("guib")
    info = build_demo(root / "calib")
    srv = Served(info.root, ["--gui-config", str(gui_config(root))])
    with headless_chromium() as driver:
        yield srv, info, driver
    srv.stop()


def wait(driver, cond, timeout=30):
    return WebDriverWait(driver, timeout).until(lambda d: cond(d))


def image_loaded(driver, css):
    return wait(driver, lambda d: d.execute_script(
        "var i = document.querySelector(arguments[0]);"
        "return i && i.complete && i.naturalWidth > 0 ? i.naturalWidth : 0;", css))


def post_via_page(driver, action, fields):
    """Submit a POST form built in the page (as a crafted page would), with the CSRF
    token of this session when the page has one."""
    driver.execute_script("""
        var f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];
        var t = document.querySelector('input[name=csrf]');
        var all = arguments[1]; if (t) { all.csrf = t.value; }
        for (var k in all) { var i = document.createElement('input'); i.type = 'hidden';
            i.name = k; i.value = all[k]; f.appendChild(i); }
        document.body.appendChild(f); f.submit();""", action, fields)
    wait(driver, lambda d: d.find_elements(By.ID, "error") or d.find_elements(By.ID, "message"))


def log_in(driver, base, user):
    driver.get(base + "/gui/login")
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[user])
    driver.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait(driver, lambda d: d.find_elements(By.ID, "who"))
    assert driver.find_element(By.ID, "who").text == user


def log_out(driver):
    driver.find_element(By.CSS_SELECTOR, "header form button").click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "a.login"))


def test_browse_timeline_image_and_compare(site):
    srv, info, d = site
    d.get(srv.base + "/gui/")
    rows = d.find_elements(By.CSS_SELECTOR, "table.detectors tbody tr")
    assert [r.find_element(By.CSS_SELECTOR, "a.det").text for r in rows] == [
        "epix10ka-0001", "jungfrau-0001"]
    d.find_element(By.ID, "search").send_keys("mfx")  # the alias of the epix10ka
    visible = [r.text for r in rows if r.is_displayed()]
    assert len(visible) == 1 and visible[0].startswith("epix10ka-0001")
    d.find_element(By.LINK_TEXT, "epix10ka-0001").click()
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "svg.timeline"))
    svgs = d.find_elements(By.CSS_SELECTOR, "svg.timeline")
    assert len(svgs) == 4 and all(s.is_displayed() for s in svgs)
    bars = d.find_elements(By.CSS_SELECTOR, "svg.timeline rect.bar")
    with DCStore(info.stores["epix10ka-0001"]) as cs:
        assert len(bars) == sum(len(cs[c]) for c in cs.ctypes())
    assert all(b.size["width"] > 0 for b in bars)
    # an image of a version
    d.find_element(By.CSS_SELECTOR, f'a.ver[href$="/v/pedestals/{R1}/1"]').click()
    assert image_loaded(d, "img#figure") > 300
    assert "sha256" in d.page_source
    # compare two versions from the store page's compare form
    d.back()
    form = d.find_element(By.CSS_SELECTOR, f'#r-pedestals-{R1} form.compare')
    form.find_element(By.TAG_NAME, "button").click()
    wait(d, lambda d: d.find_elements(By.ID, "summary"))
    assert "values differ" in d.find_element(By.ID, "summary").text
    assert "v1 vs v2" in d.find_element(By.TAG_NAME, "h1").text
    assert image_loaded(d, "img#diffimg") > 300


def test_refused_without_login_and_without_acl(site):
    srv, info, d = site
    store = info.stores["epix10ka-0001"]
    with DCStore(store) as cs:
        before = cs["pedestals"].rangeobj(R1).versdef()
    keys = {"ctype": "pedestals", "range": R1, "version": "2"}

    def refused(hint: str, status: int, error: str) -> None:
        """The page says why there are no buttons; a crafted POST gets ``status``."""
        d.get(srv.base + "/gui/d/epix10ka-0001")
        assert hint in d.find_element(By.ID, "acl").text
        assert not d.find_elements(By.CSS_SELECTOR, "form.act-default")
        post_via_page(d, "/gui/d/epix10ka-0001/set-default", keys)
        assert d.title.startswith(f"Error {status}")
        assert error in d.find_element(By.ID, "error").text
    refused("log in to change", 401, "log in")
    log_in(d, srv.base, "eve")
    refused("may not change the repository", 403, "'eve' may not change")
    log_out(d)
    with DCStore(store) as cs:
        assert cs["pedestals"].rangeobj(R1).versdef() == before


def test_log_in_change_and_see_it_in_history(site):
    srv, info, d = site
    log_in(d, srv.base, "alice")
    d.get(srv.base + "/gui/d/epix10ka-0001")
    sect = d.find_element(By.ID, f"r-pedestals-{R1}")
    if HAS_STATES:  # deprecate v2 (asks for confirmation first)
        f = [f for f in sect.find_elements(By.CSS_SELECTOR, "form.act-deprecate")
             if f.find_element(By.NAME, "version").get_attribute("value") == "2"][0]
        f.find_element(By.NAME, "reason").send_keys("bad dark run")
        f.find_element(By.TAG_NAME, "button").click()
        d.switch_to.alert.accept()
        action = "deprecate"
    else:  # no version states in this pscalib: make v2 the default
        f = sect.find_element(By.CSS_SELECTOR, "form.act-default")
        f.find_element(By.TAG_NAME, "button").click()
        action = "set_default"
    wait(d, lambda d: d.find_elements(By.ID, "message"))
    assert "v2" in d.find_element(By.ID, "message").text
    d.find_element(By.LINK_TEXT, "full history").click()
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "table.history"))
    first = d.find_elements(By.CSS_SELECTOR, "table.history tbody tr")[0].text  # newest
    assert "alice@" in first and action in first and R1 in first
    with DCStore(info.stores["epix10ka-0001"]) as cs:
        rng = cs["pedestals"].rangeobj(R1)
        # a state change is recorded on the version (a default it moves, on the range)
        obj = rng.versobj(2) if action == "deprecate" else rng
        rec = obj.history_records()[-1]
        assert rec.user == "alice" and rec.action == action
        if action == "deprecate":
            assert rng.versobj(2).state() == "deprecated"
    log_out(d)


def test_create_publish_tag_and_refused_delete(site):
    srv, info, d = site
    log_in(d, srv.base, "alice")
    d.find_element(By.LINK_TEXT, "tags of the calib directory").click()
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "form.tag-create"))
    d.find_element(By.ID, "tagname").send_keys("browser-1")
    d.find_element(By.ID, "tagnote").send_keys("made in Chromium")
    assert d.find_element(By.ID, "tagall").is_selected()  # the whole calib directory
    d.find_element(By.CSS_SELECTOR, "form.tag-create button").click()
    wait(d, lambda d: d.find_elements(By.ID, "message"))
    assert "created in 2 stores" in d.find_element(By.ID, "message").text
    assert d.find_element(By.ID, "tagstate").text == "open"
    assert d.find_elements(By.CSS_SELECTOR, "table.tagrows tbody tr")
    d.find_element(By.CSS_SELECTOR, "form.tag-publish button").click()
    d.switch_to.alert.accept()  # publishing asks first: it cannot be undone
    wait(d, lambda d: d.find_elements(By.ID, "message"))
    assert "published in 2 stores" in d.find_element(By.ID, "message").text
    assert d.find_element(By.ID, "tagstate").text == "published"
    assert not d.find_elements(By.CSS_SELECTOR, "form.tag-delete")  # no button any more
    d.find_element(By.LINK_TEXT, "tags").click()
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "table.tags"))
    row = [r for r in d.find_elements(By.CSS_SELECTOR, "table.tags tbody tr")
           if r.find_element(By.CSS_SELECTOR, "a.tag").text == "browser-1"][0]
    assert row.find_element(By.CSS_SELECTOR, "span.state").text.startswith("published ")
    # a delete anyway (a form built in the page, with this session's token) is refused
    before = {n: file_digest(p) for n, p in info.stores.items()}
    post_via_page(d, "/gui/tags/browser-1/delete", {})
    assert d.title.startswith("Error 409")
    assert "cannot be deleted" in d.find_element(By.ID, "error").text
    assert {n: file_digest(p) for n, p in info.stores.items()} == before
    for p in info.stores.values():
        with DCStore(p) as cs:
            rows = [r for r in cs.backend.tag_rows() if r.name == "browser-1"]
            assert rows and all(r.published and r.user == "alice" for r in rows)
    log_out(d)
