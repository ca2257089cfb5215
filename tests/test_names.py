"""Name validation: real detector names pass, hostile ones fail saying which rule broke."""
import pytest

from pscalib import DCStore
from pscalib.errors import InvalidNameError
from pscalib.names import (MAX_DETNAME_LEN, make_detname, split_detname, validate_alias,
                           validate_ctype, validate_detid, validate_detname,
                           validate_dettype)

EPIX_ID = "-".join(["0000000001", "3925999616", "0996663297", "3791650826", "1232098304",
                    "0953206283", "0000000000"][:7])


@pytest.mark.parametrize("name, dettype, detid", [
    ("cspad-0001", "cspad", "0001"),
    ("cspad2x2-0002", "cspad2x2", "0002"),
    ("pnccd-0003", "pnccd", "0003"),
    ("epix10ka-" + EPIX_ID, "epix10ka", EPIX_ID),
    ("epix100a-" + EPIX_ID, "epix100a", EPIX_ID),
    ("jungfrau-170505-149520170815-3d00b0", "jungfrau", "170505-149520170815-3d00b0"),
    ("cspad-CxiDs2.0-Cspad.0", "cspad", "CxiDs2.0-Cspad.0"),
])
def test_real_detnames_split(name, dettype, detid):
    assert split_detname(name) == (dettype, detid)
    assert validate_detname(name) == name
    assert make_detname(dettype, detid) == name


@pytest.mark.parametrize("name, rule", [
    ("", "is empty"),
    ("cspad/0001", "path separator"),
    ("cspad-00\\01", "path separator"),
    ("/etc/passwd", "path separator"),
    ("cspad-../../etc", "path separator"),
    ("cspad-..", "contains '..'"),
    ("cspad-a..b", "contains '..'"),
    ("cspad-00\x0001", "NUL"),
    ("cspad-00\n01", "control character"),
    ("cspad-00\x1b[31m", "control character"),
    ("cspad-00\x7f", "control character"),
    ("cspad-" + "1" * MAX_DETNAME_LEN, "limit is"),
    ("cspad0001", "<dettype>-<detid>"),
    ("-cspad-0001", "must not start"),
    (".cspad-0001", "must not start"),
    (" cspad-0001", "must not start"),
    ("CSPAD-0001", "lower case"),
    ("1cspad-0001", "starting with a letter"),
    ("cspad-0001 ", "end with blanks"),
    ("cspad-\u0430001", "contains"),          # Cyrillic 'а' looking like a latin 'a'
    ("cspad-00\u200b01", "contains"),         # zero-width space
    ("cspad-0001\u2215x", "contains"),        # division slash looking like '/'
    ("cspаd-0001", "lower case"),              # Cyrillic 'а' in the detector type
    ("cspad-.hidden", "must not start with '.'"),
])
def test_hostile_detnames_rejected_with_rule(name, rule):
    with pytest.raises(InvalidNameError) as ei:
        validate_detname(name)
    assert rule in str(ei.value)


@pytest.mark.parametrize("value", [None, 1, b"cspad-0001", ["cspad-0001"]])
def test_non_string_names(value):
    with pytest.raises(InvalidNameError, match="must be a string"):
        validate_detname(value)


def test_parts_validated_separately():
    with pytest.raises(InvalidNameError, match="detector type"):
        validate_dettype("cs/pad")
    with pytest.raises(InvalidNameError, match="detector id"):
        validate_detid("00:01")
    with pytest.raises(InvalidNameError, match="calibration type"):
        validate_ctype("Pedestals")


@pytest.mark.parametrize("alias", ["CxiDs2.0:Cspad.0", "front", "DsaCsPad", "XppGon.0:Epix100a.1"])
def test_valid_aliases(alias):
    assert validate_alias(alias) == alias


@pytest.mark.parametrize("alias, rule", [
    ("", "is empty"),
    ("a/b", "path separator"),
    ("..", "contains '..'"),
    ("a b", "white space"),
    ("a\tb", "control character"),
    ("a\x00b", "NUL"),
    ("#front", "comment marker"),
    ("\u0421xiDs2.0:Cspad.0", "printable ASCII"),   # Cyrillic capital 'С'
    ("front\u200b", "printable ASCII"),             # invisible zero-width space
    ("front\u202e", "printable ASCII"),             # right-to-left override
    ("fr\u00a0ont", "white space"),                 # no-break space
    ("x" * 201, "limit is"),
])
def test_hostile_aliases(alias, rule):
    with pytest.raises(InvalidNameError) as ei:
        validate_alias(alias)
    assert rule in str(ei.value)


@pytest.mark.parametrize("name", ["../cspad-0001", "cspad-../../x", "/tmp/cspad-0001",
                                  "cspad-\x00"])
def test_hostile_names_never_reach_the_filesystem(tmp_path, name):
    calib = tmp_path / "calib"
    calib.mkdir()
    with pytest.raises(InvalidNameError):
        DCStore(calib, name, mode="a")
    assert list(tmp_path.rglob("*")) == [calib]  # nothing created anywhere
