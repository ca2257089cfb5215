"""Pictures: the real `dcs plot` / `dcs timeline` on demo stores; PNGs read back.

A known pattern (a bright block in one segment) is added to a demo store with the real
`dcs add`; the PNG written by `dcs plot` is read back with matplotlib and the block must
be exactly (raw images) or roughly (figures) where the layout puts it.
"""

import numpy as np
import pytest

mpl_image = pytest.importorskip("matplotlib.image", reason="pscalib[plot] not installed")

from test_cli import dcs, ok, assert_one_line_error  # noqa: E402
from pscalib import DCStore  # noqa: E402
from pscalib.demo import build_demo  # noqa: E402
from pscalib.errors import InvalidInputError  # noqa: E402

T = "2025-02-01T00:00:00Z"
BLOCK = (1, slice(100, 150), slice(200, 260))  # segment 1, rows 100..149, cols 200..259
YELLOW = np.array([0.993248, 0.906157, 0.143936])  # viridis at 1.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("plotdemo")
    info = build_demo(root / "calib")
    epix = info.stores["epix10ka-0001"]
    pattern = np.zeros((4, 352, 384), np.float32)
    pattern[BLOCK] = 1000.0
    np.save(root / "pattern.npy", pattern)
    ok(dcs("add", epix, "pedestals", root / "pattern.npy", "--begin", "2025-01-01",
           "-m", "known pattern"))
    second = pattern.copy()
    second[2, 10:20, 30:50] = 7.0  # v2 differs from v1 only in this block of segment 2
    np.save(root / "second.npy", second)
    ok(dcs("add", epix, "pedestals", root / "second.npy", "--begin", "2025-01-01",
           "--no-default"))
    return info, root


def _read(path):
    img = mpl_image.imread(str(path))
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    return img


def _runs(flags, min_len):
    """Number of runs of True at least ``min_len`` long."""
    n, length = 0, 0
    for f in list(flags) + [False]:
        if f:
            length += 1
        else:
            n += length >= min_len
            length = 0
    return n


def _box(mask):
    r, c = np.nonzero(mask)
    return r.min(), r.max(), c.min(), c.max(), mask.sum()


def test_raw_mosaic_block_lands_exactly(demo, tmp_path):
    info, _ = demo
    out = tmp_path / "m.png"
    ok(dcs("plot", info.stores["epix10ka-0001"], "pedestals", "-t", T, "--layout", "mosaic",
           "--raw", "-o", out))
    img = _read(out)
    # 2x2 grid of 352x384 panels, 4 empty pixels between: segment 1 is top right
    assert img.shape[:2] == (2 * 352 + 4, 2 * 384 + 4)
    bright = np.all(np.abs(img[..., :3] - YELLOW) < 0.01, axis=2)
    assert _box(bright) == (100, 149, 388 + 200, 388 + 259, 50 * 60)
    assert img[352 + 1, 10, 3] == 0.0  # the gap between panels is transparent


def test_raw_geometry_block_lands_where_derived(demo, tmp_path):
    """Segment 1 of the epix10ka quad: X0 = -20144, Y0 = -20823, no design rotation; the IP
    rotates by 90 deg. Pixel (100, 200) is at local (1000, 7700) -> camera (-19144,
    -13123) -> top (13123, -19144) -> image (row, col) = ((13123 + 38634) / 100,
    (-19144 + 39554) / 100) = (518, 204); pixel (149, 259) at local (6900, 2800) -> (567,
    263). Tilts move this by at most a few bins."""
    info, _ = demo
    out = tmp_path / "g.png"
    ok(dcs("plot", info.stores["epix10ka-0001"], "pedestals", "-t", T, "--layout",
           "geometry", "--raw", "-o", out))
    img = _read(out)
    assert abs(img.shape[0] - 773) <= 3 and abs(img.shape[1] - 792) <= 3
    bright = np.all(np.abs(img[..., :3] - YELLOW) < 0.01, axis=2)
    r0, r1, c0, c1, n = _box(bright)
    for got, want in zip((r0, r1, c0, c1), (518, 567, 204, 263)):
        assert abs(got - want) <= 3, (r0, r1, c0, c1)
    assert abs(n - 3000) <= 100


def test_figure_shows_block_in_the_right_panel(demo, tmp_path):
    info, _ = demo
    out = tmp_path / "fig.png"
    res = ok(dcs("plot", info.stores["epix10ka-0001"], "pedestals", "-t", T, "--layout",
                 "mosaic", "-o", out))
    assert str(out) in res.stdout
    img = _read(out)
    h, w = img.shape[:2]
    assert (h, w) == (750, 900)
    bright = np.all(np.abs(img[..., :3] - YELLOW) < 0.02, axis=2)
    bright[:, int(0.88 * w):] = False  # ignore the colour bar
    r, c = np.nonzero(bright)
    assert len(r) > 100
    # mosaic area: x 5%..88%, y from 10% (top) to 68%; segment 1 = top-right panel
    assert 0.05 * w + 0.415 * w < c.mean() < 0.88 * w
    assert 0.10 * h < r.mean() < 0.10 * h + 0.29 * h


def test_diff_raw_shows_only_the_changed_block(demo, tmp_path):
    info, _ = demo
    out = tmp_path / "d.png"
    ok(dcs("plot", info.stores["epix10ka-0001"], "pedestals", "-t", T, "--version", "1",
           "--diff-version", "2", "--layout", "mosaic", "--raw", "-o", out))
    img = _read(out)
    opaque = img[..., 3] > 0
    white = np.all(img[..., :3] > 0.9, axis=2)
    changed = opaque & ~white
    # segment 2 = bottom left panel: rows 356.., cols 0..
    assert _box(changed) == (356 + 10, 356 + 19, 30, 49, 200)


def test_diff_figure_and_geometry_and_timeline(demo, tmp_path):
    info, _ = demo
    epix, jf = info.stores["epix10ka-0001"], info.stores["jungfrau-0001"]
    ok(dcs("plot", epix, "pedestals", "-t", T, "--version", "1", "--diff-version", "2",
           "-o", tmp_path / "d.svg"))
    assert (tmp_path / "d.svg").read_text().lstrip().startswith("<?xml")
    ok(dcs("plot", jf, "geometry", "-t", "2024-06-01", "--version", "1", "--diff-version",
           "1", "-o", tmp_path / "gd.png"))
    ok(dcs("plot", jf, "geometry", "-t", "2024-06-01", "-o", tmp_path / "geo.png"))
    ok(dcs("plot", epix, "common_mode", "-t", T, "-o", tmp_path / "cm.pdf"))
    assert (tmp_path / "cm.pdf").read_bytes().startswith(b"%PDF")
    out = tmp_path / "t.png"
    ok(dcs("timeline", epix, "-o", out))
    img = _read(out)
    # tab:blue at alpha 0.85 over white
    blue = np.all(np.abs(img[..., :3] - np.array([0.254, 0.547, 0.750])) < 0.03, axis=2)
    runs = [_runs(col, 15) for col in blue.T]  # bar strips (~28 px) down each column
    with DCStore(epix) as cs:
        from pscalib.plot.model import timeline_rows
        rows = timeline_rows(cs)
    lanes = sum(max(b.lane for b in bs) + 1 for bs in rows.values())
    assert max(runs) == lanes
    ok(dcs("timeline", epix, "--ctype", "pedestals", "-o", tmp_path / "tp.png"))


def test_dcs_diff_plot_draws_the_difference(demo, tmp_path):
    """``dcs diff --versions N M --plot`` draws the picture ``dcs plot --diff-version``
    draws (same range, same geometry), and still prints the difference (exit 1)."""
    info, _ = demo
    epix = info.stores["epix10ka-0001"]
    res = dcs("diff", epix, "--ctype", "pedestals", "--range", "2025-01-01", "--versions",
              "1", "2", "--plot", tmp_path / "d.png")
    assert res.returncode == 1 and "differ" in res.stdout, res.stderr
    assert f"wrote {tmp_path / 'd.png'}" in res.stderr
    ok(dcs("plot", epix, "pedestals", "-t", T, "--version", "1", "--diff-version", "2",
           "-o", tmp_path / "p.png"))
    assert np.array_equal(_read(tmp_path / "d.png"), _read(tmp_path / "p.png"))
    res = dcs("diff", epix, epix, "--plot", tmp_path / "x.png")
    assert res.returncode == 2 and "--plot is only used with --versions" in res.stderr
    res = dcs("diff", epix, "--ctype", "pedestals", "--range", "2025-01-01", "--versions",
              "1", "9", "--plot", tmp_path / "y.png")
    assert_one_line_error(res, 1, "9")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


def test_timelines_show_tags(demo, tmp_path):
    import shutil
    from pscalib.plot.model import timeline_rows
    from pscalib.plot.svg import timeline_svg
    from pscalib.store.tags import create_tag
    info, _ = demo
    epix = tmp_path / "epix10ka-0001.h5"
    shutil.copy(info.stores["epix10ka-0001"], epix)
    with DCStore(epix, mode="a") as cs:
        create_tag(cs, "prod-7")
        v = cs.version_at("pedestals", T)
        assert v.tags() == ["prod-7"]
        assert v.rangeobj().versobj(2).tags() == []  # not the default: not selected
        rows = timeline_rows(cs, ["pedestals"])
    marks = {(b.name, m.version): m.tags for b in rows["pedestals"] for m in b.versions}
    assert marks[(v.rangeobj().range(), v.version())] == ["prod-7"]
    assert "tags prod-7" in timeline_svg(rows)


def test_plot_errors_are_one_line(demo, tmp_path):
    info, _ = demo
    epix = info.stores["epix10ka-0001"]
    res = dcs("plot", epix, "nosuch", "-t", T, "-o", tmp_path / "x.png")
    assert_one_line_error(res, 1, "nosuch")
    res = dcs("plot", epix, "pedestals", "-t", T, "--percentiles", "99,1", "-o",
              tmp_path / "x.png")
    assert_one_line_error(res, 1, "percentiles")
    res = dcs("plot", epix, "pedestals", "-t", T, "-o", tmp_path / "x.gif")
    assert_one_line_error(res, 1, "png")
    res = dcs("plot", epix, "geometry", "-t", T, "--raw", "-o", tmp_path / "x.png")
    assert_one_line_error(res, 1, "text")
    res = dcs("plot", epix, "pedestals", "-t", "1999-01-01", "-o", tmp_path / "x.png")
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing written by failed commands


def test_library_functions(demo):
    from pscalib.plot import plot_array, plot_diff, robust_limits
    from pscalib.plot.arrays import image_of, mosaic_shape
    assert robust_limits(np.arange(101.0)) == pytest.approx((1.0, 99.0))
    assert robust_limits(np.full(10, 3.0)) == (2.5, 3.5)
    assert robust_limits(np.array([np.nan, np.inf])) == (0.0, 1.0)
    assert robust_limits(np.array([-4.0, 1.0, 2.0]), (0, 100), symmetric=True) == (-4.0, 4.0)
    with pytest.raises(InvalidInputError):
        robust_limits(np.zeros(3), (50, 10))
    assert mosaic_shape(8) == (2, 4) and mosaic_shape(4) == (2, 2) and mosaic_shape(1) == (1, 1)
    img, used = image_of(np.zeros((2, 3, 4, 5)))
    assert used == "mosaic" and img.shape == (2 * 4 + 4, 3 * 5 + 8)
    with pytest.raises(InvalidInputError, match="cannot subtract"):
        plot_diff(np.zeros(3), np.zeros(4))
    with pytest.raises(InvalidInputError, match="text with an array"):
        plot_diff("a", np.zeros(4))
    with pytest.raises(InvalidInputError, match="dtype"):
        plot_array(np.array(["x"]))
    fig = plot_diff("a\nb\n", "a\nc\n", ("v1", "v2"))
    texts = [t.get_text() for t in fig.texts]
    assert "-b" in texts and "+c" in texts


def test_repr_html(demo):
    info, _ = demo
    with DCStore(info.stores["epix10ka-0001"]) as cs:
        html = cs._repr_html_()
        for ct in cs.ctypes():
            assert ct in html
        assert "<svg" in html and "known pattern" not in html
        assert "<svg" in cs["pedestals"]._repr_html_()
        r = cs["pedestals"].ranges()[-1]
        assert "v0002" in r._repr_html_() and "default" in r._repr_html_()
        v = r.versions()[0]
        assert v._repr_html_().count("<tr>") == 2 and "float32 (4, 352, 384)" in v._repr_html_()


def test_versions_by_range_matches_versions(demo):
    """The one-call version listing (used by timelines) equals the per-range listing, for
    the native backend and for legacy files."""
    from conftest import LEGACY_DIR
    paths = list(demo[0].stores.values()) + sorted(LEGACY_DIR.glob("**/*.h5"))[:2]
    for p in paths:
        with DCStore(p) as cs:
            be = cs.backend
            for ct in cs.ctypes():
                tab = be.range_table(ct)
                want = {(b, e): be.versions(ct, b, e)
                        for b, e in zip(tab.tsbegin.tolist(), tab.tsend.tolist())}
                assert be.versions_by_range(ct) == want


def test_4d_mosaic_block_lands_exactly(tmp_path):
    """A 4-D array (2 gain modes x 3 segments) is a mosaic of its 6 flattened segments
    (2 x 3 panels, 4 empty pixels between, one colour scale): a block of segment [1, 1]
    (flattened 4: row 1, column 1) lands exactly there in the real ``dcs plot --raw``."""
    arr = np.zeros((2, 3, 16, 20), np.float32)
    arr[1, 1, 2:5, 3:9] = 1000.0
    np.save(tmp_path / "a.npy", arr)
    store = tmp_path / "jungfrau-0007.h5"
    ok(dcs("add", store, "pedestals", tmp_path / "a.npy", "--begin", "2024-01-01",
           "--create"))
    out = tmp_path / "m.png"
    ok(dcs("plot", store, "pedestals", "-t", "2024-02-01", "--raw", "-o", out))
    img = _read(out)
    assert img.shape[:2] == (2 * 16 + 4, 3 * 20 + 2 * 4)
    bright = np.all(np.abs(img[..., :3] - YELLOW) < 0.01, axis=2)
    assert _box(bright) == (16 + 4 + 2, 16 + 4 + 4, 20 + 4 + 3, 20 + 4 + 8, 3 * 6)


def test_2d_image_block_lands_exactly(tmp_path):
    """A 2-D array is drawn as one image, one pixel per element (row 0 at the top)."""
    arr = np.zeros((30, 40), np.float32)
    arr[5:9, 30:37] = 1000.0
    np.save(tmp_path / "b.npy", arr)
    store = tmp_path / "epix100a-0003.h5"
    ok(dcs("add", store, "pixel_gain", tmp_path / "b.npy", "--begin", "2024-01-01",
           "--create"))
    ok(dcs("plot", store, "pixel_gain", "-t", "2024-02-01", "--raw", "-o", tmp_path / "i.png"))
    img = _read(tmp_path / "i.png")
    assert img.shape[:2] == (30, 40)
    bright = np.all(np.abs(img[..., :3] - YELLOW) < 0.01, axis=2)
    assert _box(bright) == (5, 8, 30, 36, 4 * 7)
