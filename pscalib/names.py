"""Validation of every name that enters pscalib.

A detector name (*detname*) is ``<dettype>-<detid>``: ``cspad-0001``,
``epix100a-3925999616-0996663297-...``, ``cspad-CxiDs2.0-Cspad.0``. Names become file and
HDF5 group names, so anything that could escape a calibration directory or confuse a tool
(path separators, ``..``, NUL and other control characters, absolute paths, empty or very long
names) is rejected with an error saying which rule was broken.
"""
from __future__ import annotations

import re
from typing import Tuple

from .errors import InvalidNameError

__all__ = ["validate_ctype", "validate_dettype", "validate_detid", "validate_detname",
           "split_detname", "make_detname", "validate_parkey", "validate_alias",
           "MAX_DETNAME_LEN", "KNOWN_CTYPES"]

#: Long enough for epix ids (7 x 10 digits) with room to spare, short enough that
#: ``.<detname>.h5.pscalib-tmp-...`` stays under the usual 255-byte file-name limit.
MAX_DETNAME_LEN = 200
MAX_CTYPE_LEN = 64
MAX_PARKEY_LEN = 255
MAX_ALIAS_LEN = 200

#: Calibration types with convenience accessors; any other ``[a-z0-9_]+`` name works too.
KNOWN_CTYPES = ("pedestals", "pixel_status", "pixel_rms", "pixel_gain", "pixel_mask",
                "pixel_bkgd", "common_mode", "geometry")

_CTYPE_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")  # leading '_' is reserved (_history ...)
_DETTYPE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_DETID_RE = re.compile(r"^[A-Za-z0-9._+-]+$")


def _common_checks(kind: str, name: object, maxlen: int) -> str:
    if not isinstance(name, str):
        raise InvalidNameError(f"{kind} must be a string, got {type(name).__name__} {name!r}")
    if not name:
        raise InvalidNameError(f"{kind} is empty")
    if "\x00" in name:
        raise InvalidNameError(f"{kind} {name!r} contains a NUL character")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidNameError(f"{kind} {name!r} contains a control character")
    if "/" in name or "\\" in name:
        raise InvalidNameError(f"{kind} {name!r} contains a path separator ('/' or '\\')")
    if ".." in name:
        raise InvalidNameError(f"{kind} {name!r} contains '..'")
    if len(name) > maxlen:
        raise InvalidNameError(f"{kind} is {len(name)} characters long; the limit is {maxlen}")
    return name


def validate_ctype(ctype: object) -> str:
    """Return ``ctype`` if it is a valid calibration type name (``[a-z0-9][a-z0-9_]*``)."""
    name = _common_checks("calibration type", ctype, MAX_CTYPE_LEN)
    if not _CTYPE_RE.match(name):
        raise InvalidNameError(
            f"calibration type {name!r} may only contain lower-case letters, digits and '_', "
            f"and must not start with '_' (e.g. 'pedestals', 'pixel_status')")
    return name


def validate_dettype(dettype: object) -> str:
    """Return ``dettype`` if valid: lower case, starts with a letter, ``[a-z0-9_]``."""
    name = _common_checks("detector type", dettype, MAX_CTYPE_LEN)
    if not _DETTYPE_RE.match(name):
        raise InvalidNameError(
            f"detector type {name!r} must be lower case letters, digits and '_', starting with "
            f"a letter (e.g. 'cspad', 'epix10ka', 'jungfrau')")
    return name


def validate_detid(detid: object) -> str:
    """Return ``detid`` if valid: letters, digits and ``. _ + -``; not starting with '.'."""
    name = _common_checks("detector id", detid, MAX_DETNAME_LEN)
    if not _DETID_RE.match(name):
        bad = sorted({c for c in name if not _DETID_RE.match(c)})
        raise InvalidNameError(
            f"detector id {name!r} contains {''.join(bad)!r}; allowed are letters, digits "
            f"and '.', '_', '+', '-'")
    if name.startswith("."):
        raise InvalidNameError(f"detector id {name!r} must not start with '.'")
    return name


def split_detname(detname: object) -> Tuple[str, str]:
    """Split and validate ``<dettype>-<detid>``; returns ``(dettype, detid)``."""
    name = _common_checks("detector name", detname, MAX_DETNAME_LEN)
    if name.startswith((".", "-")) or name != name.strip():
        raise InvalidNameError(f"detector name {name!r} must not start with '.' or '-', nor "
                               f"start or end with blanks")
    if "-" not in name:
        raise InvalidNameError(
            f"detector name {name!r} must have the form <dettype>-<detid>, e.g. 'cspad-0001'")
    dettype, detid = name.split("-", 1)
    return validate_dettype(dettype), validate_detid(detid)


def validate_detname(detname: object) -> str:
    """Return ``detname`` if it is a valid ``<dettype>-<detid>`` name."""
    split_detname(detname)
    return detname  # type: ignore[return-value]


def make_detname(dettype: str, detid: str) -> str:
    """Build and validate a detname from its parts."""
    return validate_detname(f"{validate_dettype(dettype)}-{validate_detid(detid)}")


def validate_parkey(key: object) -> str:
    """Return ``key`` if it is a valid dictpars key.

    Keys may hold blanks and punctuation (psana1 header keys do) but no '/', NUL or control
    characters, must not be '.' or '..', and are at most 255 characters long.
    """
    if not isinstance(key, str):
        raise InvalidNameError(f"parameter key must be a string, got {type(key).__name__} {key!r}")
    if not key:
        raise InvalidNameError("parameter key is empty")
    if key in (".", ".."):
        raise InvalidNameError(f"parameter key {key!r} is reserved")
    if "/" in key:
        raise InvalidNameError(f"parameter key {key!r} contains '/'")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidNameError(f"parameter key {key!r} contains a NUL or control character")
    if len(key) > MAX_PARKEY_LEN:
        raise InvalidNameError(
            f"parameter key is {len(key)} characters long; the limit is {MAX_PARKEY_LEN}")
    return key


def validate_alias(alias: object) -> str:
    """Return ``alias`` if valid: printable, no whitespace, '/', '..' or control characters.

    DAQ source names such as ``CxiDs2.0:Cspad.0`` are valid aliases.
    """
    name = _common_checks("alias", alias, MAX_ALIAS_LEN)
    if any(c.isspace() for c in name):
        raise InvalidNameError(f"alias {name!r} contains white space")
    # ASCII only: a look-alike letter (Cyrillic 'С') or an invisible one (U+200B) would
    # make two aliases that print the same but resolve differently
    bad = next((c for c in name if not (c.isascii() and c.isprintable())), None)
    if bad is not None:
        raise InvalidNameError(f"alias {name!r} contains {bad!r} (U+{ord(bad):04X}); aliases "
                               f"are limited to printable ASCII characters")
    if name.startswith("#"):
        raise InvalidNameError(f"alias {name!r} must not start with '#' (comment marker)")
    return name
