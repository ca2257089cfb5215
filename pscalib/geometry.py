"""psana geometry text: parse it, compute pixel coordinates, assemble detector images.

A psana geometry file (the ``geometry`` ctype) describes a tree of objects, one line each::

    PARENT PARENT_IND OBJECT OBJECT_IND X0 Y0 Z0 ROT_Z ROT_Y ROT_X TILT_Z TILT_Y TILT_X

(offsets in micrometres, angles in degrees; ``#`` lines are comments). The leaves are sensor
*segments* of a known type; every other object is the sum of its children in index order.
A child's coordinates are placed into its parent's frame by rotating about Z by
``ROT_Z + TILT_Z``, then about Y by ``ROT_Y + TILT_Y``, then about X by ``ROT_X + TILT_X``,
and shifting by ``(X0, Y0, Z0)``. The root is the one object that is nobody's child
(``IP`` in the shipped files).

Segment types known here (pixel-centre coordinates in the segment frame, origin at the
segment centre, as psana defines them):

============== =========== ============ ============================================
name           rows x cols pixel [um]   layout
============== =========== ============ ============================================
``SENS2X1:V1`` 185 x 388   109.92       CSPAD 2x1: two ASICs of 194 columns, the two
                                        middle columns 274.8 um wide; row 0 at +y
``EPIX10KA:V1`` 352 x 384  100          2x2 ASICs; the middle two rows and columns
                                        250 um wide; row 0 at +y, column 0 at -x
``JUNGFRAU:V2`` 512 x 1024 75           2x4 ASICs of 256x256 with a 2-pixel gap
                                        between ASICs; row 0 at -y, column 0 at -x
``MTRX:R:C:PR:PC`` R x C   PR, PC       plain matrix (rows of pitch PR, columns PC)
============== =========== ============ ============================================

As in psana, a wide pixel's coordinate is where a normal pixel flush with its outer edge
would sit, so an image binned at the normal pitch leaves empty bins for the extra width.

Images (:meth:`Geometry.image`) are binned at the pixel size of the first segment. The
default ``frame="psana"`` is psana's image-matrix frame (rows along X, columns along Y);
``frame="lab"`` puts +X to the right and +Y up.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from .errors import InvalidInputError, InvalidPayloadError

__all__ = ["GeoObject", "SegmentType", "Geometry", "parse_geometry", "segment_type",
           "SEGMENT_TYPES"]

#: Bounds that keep a crafted geometry text from exhausting memory or recursion.
MAX_OBJECTS = 10_000
MAX_PIXELS = 200_000_000
MAX_DEPTH = 64

_NFIELDS = 13


@dataclass(frozen=True)
class GeoObject:
    """One line of a geometry text: an object placed in its parent's frame."""
    parent: str
    pindex: int
    name: str
    index: int
    x0: float
    y0: float
    z0: float
    rot_z: float
    rot_y: float
    rot_x: float
    tilt_z: float
    tilt_y: float
    tilt_x: float
    lineno: int = 0

    @property
    def key(self) -> Tuple[str, int]:
        return (self.name, self.index)

    @property
    def parent_key(self) -> Tuple[str, int]:
        return (self.parent, self.pindex)


@dataclass(frozen=True)
class SegmentType:
    """A sensor segment: shape, nominal pixel size and pixel-centre coordinates (um)."""
    name: str
    rows: int
    cols: int
    pixel_size: float
    x_of_col: np.ndarray  # (cols,) x of each column's pixel centres
    y_of_row: np.ndarray  # (rows,) y of each row's pixel centres

    @property
    def shape(self) -> Tuple[int, int]:
        return (self.rows, self.cols)

    def coords(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, Y, Z)`` arrays of shape (rows, cols) in the segment frame."""
        x, y = np.meshgrid(self.x_of_col, self.y_of_row)
        return x, y, np.zeros_like(x)


def _halves(n_half: int, pitch: float, wide: float) -> np.ndarray:
    """Centres of ``2*n_half`` pixels symmetric about 0 whose two middle pixels are wide.

    Going outwards from the centre, pixel k of a half (k = 0 is the wide one) sits at
    ``wide + k * pitch - pitch / 2``: where a normal pixel flush with the far edge would be.
    """
    outer = wide - pitch / 2 + pitch * np.arange(n_half)
    return np.concatenate([-outer[::-1], outer])


def _blocks(n_blocks: int, block: int, gap: int, pitch: float) -> np.ndarray:
    """Centres of ``n_blocks`` blocks of ``block`` pixels with ``gap`` empty pitches between,
    centred on 0."""
    step = block + gap
    idx = np.concatenate([b * step + np.arange(block) for b in range(n_blocks)]).astype(float)
    return (idx - idx[-1] / 2) * pitch


def _cspad2x1() -> SegmentType:
    pitch, wide = 109.92, 274.8
    y = (92 - np.arange(185)) * pitch  # row 0 at the top, centred on 0
    return SegmentType("SENS2X1:V1", 185, 388, pitch, _halves(194, pitch, wide), y)


def _epix10ka() -> SegmentType:
    pitch, wide = 100.0, 250.0
    return SegmentType("EPIX10KA:V1", 352, 384, pitch, _halves(192, pitch, wide),
                       _halves(176, pitch, wide)[::-1].copy())  # row 0 at +y


def _jungfrau_v2() -> SegmentType:
    pitch = 75.0
    return SegmentType("JUNGFRAU:V2", 512, 1024, pitch, _blocks(4, 256, 2, pitch),
                       _blocks(2, 256, 2, pitch))  # row 0 at -y


_BUILDERS = {"SENS2X1:V1": _cspad2x1, "EPIX10KA:V1": _epix10ka, "JUNGFRAU:V2": _jungfrau_v2}
SEGMENT_TYPES = tuple(_BUILDERS) + ("MTRX:R:C:PR:PC",)
_CACHE: Dict[str, SegmentType] = {}


def _matrix(name: str) -> Optional[SegmentType]:
    parts = name.split(":")
    if len(parts) < 5:
        return None
    try:
        rows, cols = int(parts[1]), int(parts[2])
        prow, pcol = float(parts[3]), float(parts[4])
    except ValueError:
        return None
    if not (0 < rows <= 100_000 and 0 < cols <= 100_000 and prow > 0 and pcol > 0):
        return None
    x = (np.arange(cols) - (cols - 1) / 2) * pcol
    y = ((rows - 1) / 2 - np.arange(rows)) * prow
    return SegmentType(name, rows, cols, min(prow, pcol), x, y)


def segment_type(name: str) -> Optional[SegmentType]:
    """The :class:`SegmentType` called ``name``, or None when it is not a known segment."""
    if name not in _CACHE:
        built = _BUILDERS[name]() if name in _BUILDERS else (
            _matrix(name) if name.startswith("MTRX:") else None)
        if built is None:
            return None
        _CACHE[name] = built
    return _CACHE[name]


def _num(field: str, what: str, lineno: int, integer: bool = False):
    try:
        value = int(field) if integer else float(field)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise InvalidPayloadError(f"geometry line {lineno}: {what} {field!r} is not {kind}; "
                                  f"fix the geometry text") from None
    if not integer and not math.isfinite(value):
        raise InvalidPayloadError(f"geometry line {lineno}: {what} {field!r} is not finite")
    return value


_FIELD_NAMES = ("X0", "Y0", "Z0", "ROT_Z", "ROT_Y", "ROT_X", "TILT_Z", "TILT_Y", "TILT_X")


def _parse_line(line: str, lineno: int) -> GeoObject:
    f = line.split()
    if len(f) != _NFIELDS:
        raise InvalidPayloadError(
            f"geometry line {lineno} has {len(f)} fields, expected {_NFIELDS} (PARENT "
            f"PARENT_IND OBJECT OBJECT_IND X0 Y0 Z0 ROT_Z ROT_Y ROT_X TILT_Z TILT_Y TILT_X)")
    x0, y0, z0, rz, ry, rx, tz, ty, tx = (float(_num(v, n, lineno))
                                          for v, n in zip(f[4:], _FIELD_NAMES))
    return GeoObject(f[0], int(_num(f[1], "PARENT_IND", lineno, True)), f[2],
                     int(_num(f[3], "OBJECT_IND", lineno, True)), x0, y0, z0, rz, ry, rx,
                     tz, ty, tx, lineno=lineno)


def parse_geometry(text: str) -> "Geometry":
    """Parse psana geometry text into a :class:`Geometry`.

    Raises
    ------
    InvalidPayloadError
        If a line is malformed, an object is defined twice, the tree has no single root or
        a cycle, or a leaf is not a known segment type.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"geometry must be text, got {type(text).__name__}")
    objects: List[GeoObject] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        objects.append(_parse_line(line, lineno))
        if len(objects) > MAX_OBJECTS:
            raise InvalidPayloadError(f"geometry has more than {MAX_OBJECTS} objects")
    if not objects:
        raise InvalidPayloadError("geometry text has no object lines (only comments or "
                                  "blank lines)")
    return Geometry(objects)


def _rotate(a: np.ndarray, b: np.ndarray, deg: float) -> Tuple[np.ndarray, np.ndarray]:
    """Rotate the (a, b) plane by ``deg`` degrees (counter-clockwise, a towards b)."""
    if deg == 0:
        return a, b
    quarter = deg / 90.0
    c: float
    s: float
    if quarter == round(quarter):  # exact for design rotations: no 1e-17 noise
        c, s = [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)][int(round(quarter)) % 4]
    else:
        c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return a * c - b * s, b * c + a * s


def _place(obj: GeoObject, x, y, z, tilt: bool):
    tz, ty, tx = (obj.tilt_z, obj.tilt_y, obj.tilt_x) if tilt else (0.0, 0.0, 0.0)
    x1, y1 = _rotate(x, y, obj.rot_z + tz)
    z2, x2 = _rotate(z, x1, obj.rot_y + ty)
    y3, z3 = _rotate(y1, z2, obj.rot_x + tx)
    return x2 + obj.x0, y3 + obj.y0, z3 + obj.z0


class Geometry:
    """A parsed geometry tree (see the module docstring)."""

    def __init__(self, objects: List[GeoObject]):
        self.objects = list(objects)
        self._by_key: Dict[Tuple[str, int], GeoObject] = {}
        self._children: Dict[Tuple[str, int], List[GeoObject]] = {}
        for o in self.objects:
            if o.key in self._by_key:
                raise InvalidPayloadError(f"geometry line {o.lineno}: object {o.name} "
                                          f"{o.index} is defined twice (first on line "
                                          f"{self._by_key[o.key].lineno})")
            self._by_key[o.key] = o
            self._children.setdefault(o.parent_key, []).append(o)
        for kids in self._children.values():
            kids.sort(key=lambda c: c.index)
        roots = sorted({o.parent_key for o in self.objects} - set(self._by_key))
        if len(roots) != 1:
            raise InvalidPayloadError(
                f"geometry must have exactly one top object (a parent that is nobody's "
                f"child), found {len(roots)}: {', '.join(f'{n} {i}' for n, i in roots) or '-'}")
        self.root = roots[0]
        self._reached: set = set()
        self._segments = self._collect(self.root, 0, set())
        stray = [o for o in self.objects if o.key not in self._reached]
        if stray:  # e.g. a cycle of objects that are each other's parents
            raise InvalidPayloadError(f"geometry line {stray[0].lineno}: object "
                                      f"{stray[0].name} {stray[0].index} is not connected to "
                                      f"the top object {self.root[0]} {self.root[1]}")
        npix = sum(seg.rows * seg.cols for _, seg in self._segments)
        if npix > MAX_PIXELS:
            raise InvalidPayloadError(f"geometry describes {npix} pixels, more than the "
                                      f"{MAX_PIXELS} this viewer handles")

    def _collect(self, key, depth: int, seen: set) -> List[Tuple[List[GeoObject], SegmentType]]:
        """Leaves below ``key`` in order: (chain of objects leaf..top, segment type)."""
        if depth > MAX_DEPTH or key in seen:
            raise InvalidPayloadError(f"geometry tree is cyclic or deeper than {MAX_DEPTH} "
                                      f"levels at {key[0]} {key[1]}")
        seen = seen | {key}
        out: List[Tuple[List[GeoObject], SegmentType]] = []
        for child in self._children.get(key, []):
            self._reached.add(child.key)
            if child.key in self._children:
                below = self._collect(child.key, depth + 1, seen)
            else:
                seg = segment_type(child.name)
                if seg is None:
                    raise InvalidPayloadError(
                        f"geometry line {child.lineno}: {child.name} has no children and is "
                        f"not a known segment type ({', '.join(SEGMENT_TYPES)})")
                below = [([], seg)]
            out.extend((chain + [child], seg) for chain, seg in below)
        return out

    # ------------------------------------------------------------------ queries
    @property
    def nsegments(self) -> int:
        return len(self._segments)

    @property
    def shape(self) -> Tuple[int, ...]:
        """Data shape the geometry describes: (nsegments, rows, cols) or (rows, cols)."""
        shapes = {seg.shape for _, seg in self._segments}
        if len(shapes) == 1:
            return (self.nsegments,) + shapes.pop()
        return (self.size,)

    @property
    def size(self) -> int:
        return sum(seg.rows * seg.cols for _, seg in self._segments)

    @property
    def pixel_size(self) -> float:
        """Image bin size (um): the pixel size of the first segment."""
        return self._segments[0][1].pixel_size

    def segment_names(self) -> List[str]:
        return [seg.name for _, seg in self._segments]

    def pixel_coords(self, tilt: bool = True) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, Y, Z)`` of every pixel centre in the top frame (um), shaped :attr:`shape`."""
        xs, ys, zs = [], [], []
        for chain, seg in self._segments:
            x, y, z = seg.coords()
            for obj in chain:
                x, y, z = _place(obj, x, y, z, tilt)
            xs.append(x.ravel())
            ys.append(y.ravel())
            zs.append(z.ravel())
        x, y, z = (np.concatenate(a).reshape(self.shape) for a in (xs, ys, zs))
        return x, y, z

    def extent_um(self, tilt: bool = True) -> Tuple[float, float, float, float]:
        """``(xmin, xmax, ymin, ymax)`` of the pixel centres in the top frame."""
        x, y, _ = self.pixel_coords(tilt)
        return float(x.min()), float(x.max()), float(y.min()), float(y.max())

    def image_indexes(self, frame: str = "psana",
                      tilt: bool = True) -> Tuple[np.ndarray, np.ndarray]:
        """Integer (row, col) image index of every pixel, shaped :attr:`shape`."""
        x, y, _ = self.pixel_coords(tilt)
        p = self.pixel_size
        if frame == "psana":
            rows, cols = (x - x.min()) / p, (y - y.min()) / p
        elif frame == "lab":
            rows, cols = (y.max() - y) / p, (x - x.min()) / p
        else:
            raise InvalidInputError(f"frame must be 'psana' or 'lab', got {frame!r}")
        return (np.floor(rows + 0.5).astype(np.intp), np.floor(cols + 0.5).astype(np.intp))

    def image(self, data: np.ndarray, frame: str = "psana", tilt: bool = True,
              fill: float = np.nan) -> np.ndarray:
        """Assemble ``data`` (one value per pixel) into a 2-D float image.

        Bins no pixel falls into hold ``fill``; where pixels share a bin, the later wins.

        Raises
        ------
        InvalidInputError
            If ``data`` does not have one value per pixel of the geometry.
        """
        arr = np.asarray(data)
        if arr.size != self.size:
            raise InvalidInputError(
                f"data of shape {arr.shape} ({arr.size} values) does not fit the geometry "
                f"of {self.nsegments} segments, {self.size} pixels {self.shape}")
        rows, cols = self.image_indexes(frame, tilt)
        img = np.full((int(rows.max()) + 1, int(cols.max()) + 1), fill, dtype=np.float64)
        img[rows.ravel(), cols.ravel()] = arr.reshape(-1).astype(np.float64)
        return img
