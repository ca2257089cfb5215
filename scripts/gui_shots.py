"""Screenshots of the web GUI for docs/images (used by scripts/screenshots.py)."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

R1 = "20240110T000000Z_20240301T000000Z"


def gui_screenshots(out: Path, calib: Path) -> List[Path]:
    """Start ``dcs serve`` over ``calib`` (writes allowed for a demo user), log in and take
    screenshots of the main pages with headless Chromium."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from pscalib.gui.auth import hash_password, set_user
    from pscalib.gui.browser import headless_chromium
    from screenshots import shrink
    from serve_helpers import Served
    made = []
    with tempfile.TemporaryDirectory(prefix="pscalib-shots-cfg-") as tmp:
        cfg = Path(tmp) / "gui.ini"
        set_user(Path(tmp) / "users.txt", "alice", hash_password("demo-password"))
        cfg.write_text("[gui]\nwrites = true\nauth = password\nusers_file = users.txt\n"
                       "[acl]\nkind = local\n")
        srv = Served(calib, ["--gui-config", str(cfg)])
        try:
            with headless_chromium(1200, 900) as d:
                def until(cond) -> None:
                    WebDriverWait(d, 30).until(cond)

                def shot(name: str, path: str, full: bool = False) -> None:
                    d.get(srv.base + path)
                    d.execute_script("return document.readyState")
                    if full:  # whole page height (capped) for long pages
                        h = min(d.execute_script("return document.body.scrollHeight"), 2400)
                        d.set_window_size(1200, h)
                        # the window is taller than the page's viewport: add the difference
                        inner = d.execute_script("return window.innerHeight")
                        d.set_window_size(1200, min(2 * h - inner, 2600))
                    d.save_screenshot(str(out / name))
                    d.set_window_size(1200, 900)
                    shrink(out / name)
                    made.append(out / name)
                shot("gui-detectors.png", "/gui/")
                d.get(srv.base + "/gui/login")
                d.find_element(By.ID, "user").send_keys("alice")
                d.find_element(By.ID, "password").send_keys("demo-password")
                d.find_element(By.CSS_SELECTOR, "form.login button").click()
                shot("gui-store.png", "/gui/d/epix10ka-0001", full=True)
                shot("gui-version.png", f"/gui/d/epix10ka-0001/v/pedestals/{R1}/1", full=True)
                shot("gui-diff.png", f"/gui/d/epix10ka-0001/diff/pedestals/{R1}?a=1&b=2",
                     full=True)
                shot("gui-upload.png", "/gui/d/epix10ka-0001/upload")
                # a tag over the calib directory, made and published through the GUI
                d.get(srv.base + "/gui/tags")
                d.find_element(By.ID, "tagname").send_keys("run17-prod")
                d.find_element(By.ID, "tagnote").send_keys("constants of the run 17 "
                                                           "reprocessing")
                d.find_element(By.CSS_SELECTOR, "form.tag-create button").click()
                until(lambda d: d.find_elements(By.CSS_SELECTOR, "form.tag-publish"))
                d.find_element(By.CSS_SELECTOR, "form.tag-publish button").click()
                d.switch_to.alert.accept()
                until(lambda d: d.find_elements(By.CSS_SELECTOR, "#tagstate") and
                      d.find_element(By.ID, "tagstate").text == "published")
                shot("gui-tags.png", "/gui/tags/run17-prod", full=True)
        finally:
            srv.stop()
    return made
