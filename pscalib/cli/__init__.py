"""The ``dcs`` command line (click). Entry point: :func:`pscalib.cli.main.main`."""
