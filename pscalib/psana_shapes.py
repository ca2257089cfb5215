"""Shape and dtype of headerless psana1 calibration files, by detector type and ctype.

Most files in real psana1 calib directories are bare numbers without a ``# DTYPE`` /
``# NDIM`` header: psana1 knows the array from the detector type (its ``CalibParsBase*``
classes) and the calibration type (``PSCalib.GlobalUtils.calib_dtypes``). This module holds
that table; see docs/import.rst for the table with the psana source of every entry.

Detector types are pscalib's lower-case dettype names (``cspad``, ``epix100a``, ...), which
are psana's ``GlobalUtils.list_of_det_names`` lower-cased. :func:`dettype_of_source` finds
the type of a psana1 DAQ source name (``CxiDs2.0:Cspad.0`` -> ``cspad``) and
:func:`calib_group` the only calib group psana1 searches for it (``CsPad::CalibV1``).

Shape kinds
    ``fixed``: a fixed shape; the file must hold exactly that many values.
    ``segments``: a per-segment shape ``(rows, cols)``; the file must hold a multiple of
    ``rows * cols`` values and becomes ``(n, rows, cols)`` (``n`` counts segments, times gain
    stages for multi-gain detectors; give ``--shape`` to split that axis).
    ``text``: a variable-shape camera; the array is shaped as the numbers are laid out in
    the file (one line: 1-d; otherwise rows x columns), as psana1 does for these types.
    ``common_mode`` is always 1-d (all values of the file), float64.

Examples
--------
>>> headerless_layout("cspad", "pedestals")
Layout(kind='fixed', shape=(32, 185, 388), dtype=dtype('float32'))
>>> dettype_of_source("CxiDg2.0:Cspad2x2.0"), calib_group("cspad2x2")
('cspad2x2', 'CsPad2x2::CalibV1')
"""
from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np

from .errors import InvalidPayloadError

__all__ = ["Layout", "CTYPE_DTYPES", "DETTYPE_SHAPES", "SOURCE_DEVICES", "CALIB_GROUPS",
           "RUN_MAX", "dettype_of_source", "calib_group", "headerless_layout",
           "shape_for_count"]

#: psana1's largest run number in calib file names; later runs use the files of run 9999
#: (PSCalib/src/CalibFileFinder.py: ``CalibFile.rnum_max``).
RUN_MAX = 9999

#: dtype of each array calibration type (PSCalib/src/GlobalUtils.py ``calib_dtypes``).
CTYPE_DTYPES: Dict[str, np.dtype] = {
    "pedestals": np.dtype(np.float32), "pixel_status": np.dtype(np.uint16),
    "pixel_rms": np.dtype(np.float32), "pixel_gain": np.dtype(np.float32),
    "pixel_mask": np.dtype(np.uint8), "pixel_bkgd": np.dtype(np.float32),
    "common_mode": np.dtype(np.float64), "pixel_offset": np.dtype(np.float32),
    "pixel_datast": np.dtype(np.uint16),
}

_CAMERAS = ("opal1000", "opal2000", "opal4000", "opal8000", "tm6740", "orcafl40", "fccd960",
            "quartz4a150", "rayonix", "fccd", "timepix", "fli", "zyla", "pimax")

#: (kind, shape) per dettype; sources in docs/import.rst.
DETTYPE_SHAPES: Dict[str, Tuple[str, Tuple[int, ...]]] = {
    "cspad": ("fixed", (32, 185, 388)),        # CalibParsBaseCSPadV1.py
    "cspad2x2": ("fixed", (185, 388, 2)),      # CalibParsBaseCSPad2x2V1.py
    "epix100a": ("fixed", (704, 768)),         # CalibParsBaseEpix100aV1.py
    "pnccd": ("fixed", (4, 512, 512)),         # CalibParsBasePnccdV1.py
    "epix10ka": ("segments", (352, 384)),      # CalibParsBaseEpix10kaV1.py
    "jungfrau": ("segments", (512, 1024)),     # SegGeometryJungfrauV1.py
    "princeton": ("text", ()),                 # CalibParsBasePrincetonV1.py
    "andor": ("text", ()),                     # CalibParsBaseAndorV1.py
    "andor3d": ("text", ()),                   # CalibParsBaseAndor3dV1.py
    **{cam: ("text", ()) for cam in _CAMERAS},  # CalibParsStore.py -> CalibParsBaseCameraV1
}

#: DAQ device name in a source (``<det>.<n>:<Device>.<m>``) -> dettype, in the order
#: PSCalib/src/GlobalUtils.py ``det_type_from_source`` tests them.
SOURCE_DEVICES: Tuple[Tuple[str, str], ...] = (
    ("Cspad", "cspad"), ("Cspad2x2", "cspad2x2"), ("pnCCD", "pnccd"),
    ("Princeton", "princeton"), ("Andor", "andor"), ("Epix100a", "epix100a"),
    ("Epix10k", "epix10k"), ("Epix", "epix"), ("Opal1000", "opal1000"),
    ("Opal2000", "opal2000"), ("Opal4000", "opal4000"), ("Opal8000", "opal8000"),
    ("Tm6740", "tm6740"), ("OrcaFl40", "orcafl40"), ("Fccd960", "fccd960"),
    ("Acqiris", "acqiris"), ("Imp", "imp"), ("Quartz4A150", "quartz4a150"),
    ("Rayonix", "rayonix"), ("Evr", "evr"), ("Fccd", "fccd"), ("Timepix", "timepix"),
    ("Fli", "fli"), ("Pimax", "pimax"), ("DualAndor", "andor3d"), ("Jungfrau", "jungfrau"),
    ("Zyla", "zyla"), ("ControlsCamera", "controlscamera"), ("Epix10ka", "epix10ka"),
    ("Uxi", "uxi"), ("Pixis", "pixis"), ("Epix10ka2M", "epix10ka2m"),
    ("Epix10kaQuad", "epix10kaquad"), ("StreakC7700", "streak"), ("Archon", "archon"),
)

#: dettype -> the calib group psana1 searches (GlobalUtils.py ``list_of_calib_groups``).
CALIB_GROUPS: Dict[str, str] = {
    "cspad": "CsPad::CalibV1", "cspad2x2": "CsPad2x2::CalibV1",
    "princeton": "Princeton::CalibV1", "pnccd": "PNCCD::CalibV1",
    **{cam: "Camera::CalibV1" for cam in _CAMERAS + ("controlscamera", "streak", "archon")},
    "epix": "Epix::CalibV1", "epix10k": "Epix10ka::CalibV1", "epix100a": "Epix100a::CalibV1",
    "andor": "Andor::CalibV1", "acqiris": "Acqiris::CalibV1", "imp": "Imp::CalibV1",
    "evr": "EvrData::CalibV1", "andor3d": "Andor3d::CalibV1", "jungfrau": "Jungfrau::CalibV1",
    "epix10ka": "Epix10ka::CalibV1", "uxi": "Uxi::CalibV1", "pixis": "Pixis::CalibV1",
    "epix10ka2m": "Epix10ka2M::CalibV1", "epix10kaquad": "Epix10kaQuad::CalibV1",
}


class Layout(NamedTuple):
    """How a headerless file of one dettype/ctype becomes an array."""
    kind: str                # 'fixed', 'segments', 'text' or '1d'
    shape: Tuple[int, ...]   # the fixed shape or the per-segment (rows, cols); () otherwise
    dtype: np.dtype


def dettype_of_source(source: str) -> Optional[str]:
    """pscalib dettype of a psana1 DAQ source name, or None if psana1 does not know it.

    psana1 looks for ``:<Device>.`` in the source (``CxiDs2.0:Cspad.0`` is a cspad,
    ``CxiDg2.0:Cspad2x2.0`` a cspad2x2).
    """
    for device, dettype in SOURCE_DEVICES:
        if f":{device}." in source:
            return dettype
    return None


def calib_group(dettype: Optional[str]) -> Optional[str]:
    """The ``<Group>::CalibV1`` directory psana1 reads for ``dettype`` (None if unknown)."""
    return CALIB_GROUPS.get(dettype or "")


def headerless_layout(dettype: Optional[str], ctype: str) -> Optional[Layout]:
    """The layout of a headerless ``ctype`` file of ``dettype``; None if not in the table."""
    dtype = CTYPE_DTYPES.get(ctype)
    if dtype is None:
        return None
    if ctype == "common_mode":  # psana1 returns common_mode parameters as they are: 1-d
        return Layout("1d", (), dtype)
    entry = DETTYPE_SHAPES.get(dettype or "")
    if entry is None:
        return None
    return Layout(entry[0], entry[1], dtype)


def shape_for_count(layout: Layout, count: int, text_shape: Tuple[int, ...],
                    what: str) -> Tuple[int, ...]:
    """The array shape of a headerless file holding ``count`` values.

    ``text_shape`` is the layout of the numbers in the file (``(n,)`` for one line, else
    ``(lines, values per line)``); ``what`` names the file/dettype/ctype in errors.

    Raises
    ------
    InvalidPayloadError
        If the count does not fit the table's shape.
    """
    if layout.kind == "1d":
        return (count,)
    if layout.kind == "text":
        return text_shape
    seg = int(np.prod(layout.shape, dtype=np.int64))
    if layout.kind == "fixed":
        if count != seg:
            raise InvalidPayloadError(
                f"{what}: holds {count} values, but psana1's shape is {layout.shape} "
                f"({seg} values); give --shape/--dtype if this file is different")
        return layout.shape
    if count == 0 or count % seg:
        raise InvalidPayloadError(
            f"{what}: holds {count} values, not a multiple of the segment shape "
            f"{layout.shape} ({seg} values); give --shape/--dtype")
    return (count // seg,) + layout.shape
