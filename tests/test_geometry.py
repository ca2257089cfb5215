"""pscalib.geometry on the two shared psana geometry files and on hand-made texts.

Expected numbers are derived by hand from the segment facts (pixel counts and sizes) and
the offsets/rotations written in the files, not from the code under test:

* EPIX10KA:V1 (352 x 384, 100 um, the two middle rows/columns 250 um wide, wide pixels
  placed where a normal pixel flush with their outer edge would be): pixel centres span
  x = +-(250 - 50 + 191 * 100) = +-19300 um, y = +-(200 + 175 * 100) = +-17700 um.
  Quad offsets X0 in {20248, -20144, 20150, -20254}, Y0 in {-20908, -20823, 20934, 20797},
  no design rotation; the IP line rotates the camera by 90 deg (x, y) -> (-y, x).
  Without tilts: camera x in [-20254 - 19300, 20248 + 19300] = [-39554, 39548],
  camera y in [-20908 - 17700, 20934 + 17700] = [-38608, 38634];
  top frame X = -y in [-38634, 38608], Y = x in [-39554, 39548].
  Image (100 um bins, psana frame rows along X): 772.42 -> 773 rows, 791.02 -> 792 columns.
* JUNGFRAU:V2 (512 x 1024, 75 um, 2x4 ASICs of 256 with 2 empty bins between):
  centres span x = +-514.5 * 75 = +-38587.5, y = +-256.5 * 75 = +-19237.5.
  Segments have ROT_Z 90 then ROT_Y 180: (x, y) -> (-y, x) -> (y, x).
  X0 max 66941.7 -> camera x in +-(66941.7 + 19237.5) = +-86179.2;
  Y0 max 44005.5 -> camera y in +-(44005.5 + 38587.5) = +-82593; IP rotates by 90:
  top X in +-82593, Y in +-86179.2; image 2202.48 -> 2203 rows, 2298.11 -> 2299 cols.
"""
import numpy as np
import pytest

from conftest import GEOMETRY_DIR
from pscalib.errors import InvalidInputError, InvalidPayloadError
from pscalib.geometry import parse_geometry, segment_type


def _geo(name):
    path = GEOMETRY_DIR / f"geometry-def-{name}.data"
    if not path.is_file():
        pytest.skip(f"shared geometry {path} not found")
    return parse_geometry(path.read_text())


def test_epix10kaquad_extent_and_image_shape():
    g = _geo("epix10kaquad")
    assert g.shape == (4, 352, 384) and g.pixel_size == 100.0
    assert g.segment_names() == ["EPIX10KA:V1"] * 4
    xmin, xmax, ymin, ymax = g.extent_um(tilt=False)
    assert (xmin, xmax, ymin, ymax) == pytest.approx((-38634, 38608, -39554, 39548))
    img = g.image(np.ones(g.shape), tilt=False)
    assert img.shape == (773, 792)
    # the tilts (|angle| < 0.27 deg over ~20 mm) move the edges by at most ~1 bin
    tilted = g.image(np.ones(g.shape))
    assert abs(tilted.shape[0] - 773) <= 3 and abs(tilted.shape[1] - 792) <= 3
    assert np.isfinite(img).sum() == g.size  # no two untilted pixels share a bin


def test_jungfrau4m_extent_and_image_shape():
    g = _geo("jungfrau4M")
    assert g.shape == (8, 512, 1024) and g.pixel_size == 75.0
    assert g.extent_um() == pytest.approx((-82593, 82593, -86179.2, 86179.2))
    img = g.image(np.arange(g.size))
    assert img.shape == (2203, 2299)
    assert np.isfinite(img).sum() == g.size
    # lab frame: +X right, +Y up -> the same extent transposed
    assert g.image(np.ones(g.shape), frame="lab").shape == (2299, 2203)


def test_jungfrau_first_pixel_by_hand():
    """Pixel (0, 0) of segment 0: local (-38587.5, -19237.5); rot_z 90 -> (19237.5,
    -38587.5); rot_y 180 -> (-19237.5, -38587.5); + (X0, Y0) -> (-76044.6, 5418); IP rot_z
    90 -> (-5418, -76044.6), Z = 100000."""
    g = _geo("jungfrau4M")
    x, y, z = g.pixel_coords()
    assert (x[0, 0, 0], y[0, 0, 0], z[0, 0, 0]) == pytest.approx((-5418, -76044.6, 100000))
    rows, cols = g.image_indexes()
    assert (rows[0, 0, 0], cols[0, 0, 0]) == (1029, 135)  # (-5418+82593)/75, /75 of 10134.6


def test_segment_types_by_hand():
    cs = segment_type("SENS2X1:V1")
    assert cs.shape == (185, 388)
    # 193 normal columns + the wide one: 274.8 - 54.96 + 193 * 109.92 = 21434.4
    assert cs.x_of_col[-1] == pytest.approx(21434.4) and cs.x_of_col[0] == pytest.approx(-21434.4)
    assert cs.x_of_col[194] == pytest.approx(219.84)  # the wide column right of the centre
    assert cs.y_of_row[0] == pytest.approx(92 * 109.92) and cs.y_of_row[-1] < 0
    jf = segment_type("JUNGFRAU:V2")
    steps = np.diff(jf.x_of_col) / 75
    assert sorted(set(np.round(steps, 6))) == [1.0, 3.0] and np.sum(steps == 3) == 3
    m = segment_type("MTRX:10:20:50:60")
    assert m.shape == (10, 20) and m.pixel_size == 50
    assert segment_type("NOPE:V1") is None and segment_type("MTRX:x:1:1:1") is None


def test_cspad_text_and_rotation():
    text = ("# a single 2x1 rotated by 90 deg\n"
            "CAM 0 SENS2X1:V1 0  1000 -2000 0  90 0 0  0 0 0\n")
    g = parse_geometry(text)
    assert g.root == ("CAM", 0) and g.shape == (1, 185, 388)
    x, y, _ = g.pixel_coords()
    # (x, y) -> (-y, x): row 0 (y = +10112.64) goes to X = 1000 - 10112.64
    assert x[0, 0, 0] == pytest.approx(1000 - 92 * 109.92)
    assert y[0, 0, 0] == pytest.approx(-2000 - 21434.4)


@pytest.mark.parametrize("text, words", [
    ("A 0 EPIX10KA:V1 0 1 2 3\n", ["line 1", "7 fields", "13"]),
    ("A 0 EPIX10KA:V1 0 1 2 x 0 0 0 0 0 0\n", ["line 1", "Z0", "'x'"]),
    ("A 0 EPIX10KA:V1 0 1 2 nan 0 0 0 0 0 0\n", ["line 1", "not finite"]),
    ("A 0 EPIX10KA:V1 0 0 0 0 0 0 0 0 0 0\nA 0 EPIX10KA:V1 0 0 0 0 0 0 0 0 0 0\n",
     ["line 2", "defined twice"]),
    ("A 0 EPIX10KA:V1 0 0 0 0 0 0 0 0 0 0\nB 0 EPIX10KA:V1 1 0 0 0 0 0 0 0 0 0\n",
     ["exactly one top", "found 2"]),
    ("A 0 B 0 0 0 0 0 0 0 0 0 0\nB 0 A 0 0 0 0 0 0 0 0 0 0\n", ["exactly one top", "found 0"]),
    ("TOP 0 A 0 0 0 0 0 0 0 0 0 0\nA 0 BOGUS:V9 0 0 0 0 0 0 0 0 0 0\n",
     ["line 2", "BOGUS:V9", "known segment"]),
    ("# only comments\n\n", ["no object lines"]),
])
def test_malformed_geometry_one_line_messages(text, words):
    with pytest.raises(InvalidPayloadError) as ei:
        parse_geometry(text)
    msg = str(ei.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_cycle_below_the_root_is_refused():
    text = ("TOP 0 A 0 0 0 0 0 0 0 0 0 0\nA 0 B 0 0 0 0 0 0 0 0 0 0\n"
            "B 0 A 0 0 0 0 0 0 0 0 0 0\n")
    with pytest.raises(InvalidPayloadError, match="defined twice|cyclic"):
        parse_geometry(text)


def test_disconnected_cycle_is_refused():
    text = ("TOP 0 EPIX10KA:V1 0 0 0 0 0 0 0 0 0 0\nC 0 D 0 0 0 0 0 0 0 0 0 0\n"
            "D 0 C 0 0 0 0 0 0 0 0 0 0\n")
    with pytest.raises(InvalidPayloadError, match="line 2: object D 0 is not connected"):
        parse_geometry(text)


def test_data_must_fit():
    g = _geo("epix10kaquad")
    with pytest.raises(InvalidInputError, match="does not fit the geometry"):
        g.image(np.zeros((3, 352, 384)))
    with pytest.raises(InvalidInputError, match="frame"):
        g.image_indexes(frame="sideways")
