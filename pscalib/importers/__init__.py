"""Importers that bring calibrations from older formats into native stores.

- :mod:`pscalib.importers.legacy`: files of the original LCLS DCS (``dcs import-legacy``);
- :mod:`pscalib.importers.calibdir`: psana1 text calib directories (``dcs import-calibdir``).

See docs/import.rst.
"""
