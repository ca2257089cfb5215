"""Hostile input, names: ctypes, detnames, aliases, parameter keys.

Every call must raise a specific pscalib error and leave every file byte-identical
(helpers in tests/hostile.py; real files and real processes only).
"""
from __future__ import annotations

import numpy as np
import pytest

from pscalib import DCStore, errors as E
from pscalib.names import validate_alias, validate_ctype, validate_detname, validate_parkey

from hostile import INSIDE, T0, check_rejected, on_store
from hostile import store_fixture, template_fixture  # noqa: F401 (fixtures)


# ----------------------------------------------------------------------------- names
HOSTILE_NAMES = ["", ".", "..", "../etc", "a/b", "/abs", "a\\b", "a\x00b", "a\nb", "a\tb",
                 "a\x7fb", "x" * 5000, 5, None, b"pedestals", ["pedestals"]]
BAD_CTYPES = HOSTILE_NAMES + ["Pedestals", "ped estals", "péd", "_history", "_dictpars",
                              "_ranges", "_x", "ped-estals", "ped.estals", "x" * 65]


@pytest.mark.parametrize("bad", BAD_CTYPES, ids=lambda v: repr(v)[:30])
def test_bad_ctype(store, bad):
    with pytest.raises(E.InvalidNameError):
        validate_ctype(bad)
    for fn in (lambda cs: cs.add_constants(bad, np.ones(3), T0),
               lambda cs: cs.get(bad, INSIDE),
               lambda cs: cs.add_ctype(bad),
               lambda cs: cs.del_ctype(bad),
               lambda cs: cs.ctypeobj(bad),
               lambda cs: cs.version_at(bad, INSIDE)):
        on_store(store, fn, E.InvalidNameError)


# Never a valid detname or alias: rejected as a name before any file system access
BAD_DETNAMES = HOSTILE_NAMES + ["cspad-../x", "cspad-a/b", "cspad-a\x00", "cspad-a\nb",
                                "cs pad-1", "cspad-1 ", " cspad-1", "cspad-" + "9" * 300,
                                "x" * 201]
# Not a detname but shaped like an alias: looked up as one, and not found
ALIAS_SHAPED = [".", "cspad", "-0001", ".cspad-1", "cspad-", "CSPAD-1", "cspad-.hidden",
                "cspad-a:b", "cspad-\u00e9"]


@pytest.mark.parametrize("bad", BAD_DETNAMES + ALIAS_SHAPED, ids=lambda v: repr(v)[:30])
def test_bad_detname(tmp_path, bad):
    calib = tmp_path / "calib"
    calib.mkdir()
    with pytest.raises(E.InvalidNameError):
        validate_detname(bad)
    expected = (E.InvalidNameError, E.AliasNotFoundError) if bad in ALIAS_SHAPED \
        else E.InvalidInputError
    # opening or creating a store with that name must not create anything anywhere
    for mode in ("a", "x", "r"):
        check_rejected(tmp_path, lambda: DCStore(calib, bad, mode=mode), expected)


@pytest.mark.parametrize("bad", [b for b in BAD_DETNAMES + ALIAS_SHAPED if b is not None],
                         ids=lambda v: repr(v)[:30])
def test_bad_predecessor(store, bad):
    on_store(store, lambda cs: cs.set_predecessor(bad), E.InvalidNameError)
    on_store(store, lambda cs: cs.set_successor(bad), E.InvalidNameError)


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a\x00b", "a\nb", "\x1b[31m",
                                 "k" * 300, 5, None, ("a",)], ids=lambda v: repr(v)[:30])
def test_bad_parkey(store, bad):
    with pytest.raises(E.InvalidNameError):
        validate_parkey(bad)
    on_store(store, lambda cs: cs.set_par(bad, 1), E.InvalidNameError)
    on_store(store, lambda cs: cs.set_pars({"ok": 1, bad: 2}), E.InvalidNameError)
    on_store(store, lambda cs: cs.del_par(bad), E.InvalidNameError)
    on_store(store, lambda cs: cs.add_constants("pedestals", np.ones(3), T0,
                                                dictpars={bad: 1}), E.InvalidNameError)


def test_par_with_unhashable_key(store):
    on_store(store, lambda cs: cs.par(["x"]), E.InvalidNameError)


@pytest.mark.parametrize("bad", ["", "a b", "a/b", "..", "a\x00", "a\nb", "#comment",
                                 "x" * 201, 7, None], ids=lambda v: repr(v)[:30])
def test_bad_alias_name(bad):
    with pytest.raises(E.InvalidNameError):
        validate_alias(bad)
