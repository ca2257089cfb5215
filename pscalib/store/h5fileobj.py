"""HDF5 files opened through a Python file object (h5py's ``fileobj`` driver).

The in-place engine's writer, its readers and the guarded string handles open HDF5 on a
Python file object. HDF5 closes the files still open from its own C ``atexit`` handler,
which runs after the Python interpreter is gone; closing a ``fileobj`` file then calls
back into Python and the process dies with SIGSEGV (seen with a store left open in a
script that exits). Every such file is opened here and closed by a Python ``atexit``
handler, which runs while the interpreter is still alive.
"""
from __future__ import annotations

import atexit
import weakref
from typing import Any

import h5py
from h5py import h5f, h5fd

__all__ = ["open_fileobj_file"]

#: file ids opened through a file object and maybe still open
_OPEN: "weakref.WeakSet[Any]" = weakref.WeakSet()


def open_fileobj_file(name: bytes, mode: int, fapl: Any, fileobj: Any) -> h5py.File:
    """``h5py.File`` on ``fileobj`` (driver set on ``fapl``), closed at exit if still open."""
    fapl.set_fileobj_driver(h5fd.fileobj_driver, fileobj)
    f = h5py.File(h5f.open(name, mode, fapl=fapl))
    _OPEN.add(f.id)
    return f


@atexit.register
def _close_all() -> None:
    for fid in list(_OPEN):
        try:
            if fid.valid:
                h5py.File(fid).close()  # closes every object of the file, then the file
        except Exception:  # at exit: never turn a clean exit into an error
            pass
