"""pscalib: an HDF5-file-based Detector Calibration Store (DCS).

>>> from pscalib import DCStore
>>> cs = DCStore("calib/cspad/cspad-0001.h5")          # doctest: +SKIP
>>> peds = cs.get("pedestals", "2024-05-01T12:00:00")  # doctest: +SKIP
"""
from . import errors
from .errors import PscalibError
from .store import DCBase, DCRange, DCStore, DCType, DCVersion, HistoryRecord
from . import remote  # noqa: F401  registers DCStore("http://host:port", name) -> RemoteStore
from .timestamps import OPEN_END, format_ns, to_ns

__version__ = "0.1.0"

__all__ = ["DCStore", "DCType", "DCRange", "DCVersion", "DCBase", "HistoryRecord",
           "PscalibError", "errors", "to_ns", "format_ns", "OPEN_END", "__version__"]
