"""The store model: DCStore -> DCType -> DCRange -> DCVersion over one HDF5 file."""
from .dcbase import DCBase
from .dcobjects import DCRange, DCType, DCVersion
from .dcstore import DCStore
from .history import HistoryRecord

__all__ = ["DCBase", "DCStore", "DCType", "DCRange", "DCVersion", "HistoryRecord"]
