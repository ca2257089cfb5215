"""Read files written by the original LCLS DCS implementation (read-only).

:class:`~pscalib.store.DCStore` opens such files transparently through
:class:`LegacyBackend` (which lives with the other backends in :mod:`pscalib.store.legacy`);
``dcs import-legacy`` (:mod:`pscalib.importers.legacy`) converts them to the native format.
See docs/import.rst for the layout and how each part is mapped.
"""
from ..store.legacy import LegacyBackend, is_legacy

__all__ = ["LegacyBackend", "is_legacy"]
