"""The one exception hierarchy of pscalib.

Every error raised on purpose by the library derives from :class:`PscalibError`, so
``except pscalib.errors.PscalibError`` catches all of them. Each message says what was
wrong and, where there is one, what to do about it. The ``dcs`` command turns these into a
one-line message on stderr and exit status 1.

Hierarchy::

    PscalibError
    ├── InvalidInputError (also ValueError)      bad argument: fix the call
    │   ├── InvalidTimeError                     a time stamp that cannot be used
    │   ├── InvalidNameError                     detname, dettype, detid, ctype, alias, par key
    │   ├── InvalidPayloadError                  constants that cannot be stored
    │   ├── InvalidParameterError                dictpars value of an unsupported type
    │   ├── StateTransitionError                 a version state change the rules refuse
    │   ├── OutArrayError                        get(out=...) array of the wrong kind
    │   └── TagError                             tag name taken or bad, published tag changed
    ├── NotFoundError (also LookupError)         something asked for does not exist
    │   ├── StoreNotFoundError                   no store file for that name/path
    │   ├── CtypeNotFoundError
    │   ├── RangeNotFoundError
    │   ├── VersionNotFoundError
    │   │   └── DeprecatedVersionError           asked get() for a deprecated version
    │   ├── NoValidConstantsError                no range covers the requested time
    │   ├── AliasNotFoundError
    │   ├── RunNotFoundError                     a run that is not in the run table
    │   ├── AsOfUnavailableError                 the store cannot say what get returned then
    │   │   └── PurgedVersionError               ... the version it returned was deleted
    │   └── TagNotFoundError                     no tag of that name in the store(s)
    ├── StoreFormatError                         file is not a (readable) store
    │   ├── CorruptStoreError                    damaged or inconsistent file
    │   ├── UnsupportedFormatVersionError        written by a newer pscalib
    │   └── LegacyFormatError                    an original-DCS file that breaks its layout
    ├── StoreExistsError                         refusing to overwrite an existing store
    ├── ReadOnlyError                            change asked on a store opened read-only
    ├── StorePermissionError (also PermissionError)
    ├── StoreIOError (also OSError)              disk full, I/O failure during a write
    ├── LockError
    │   ├── LockTimeoutError                     another writer held the lock too long
    │   └── LockUnavailableError                 filesystem cannot lock; nothing written
    ├── AliasFileError                           malformed or conflicting alias file
    ├── RunTableError                            malformed or conflicting run table
    ├── AliasMismatchError                       store opened for another detector than
    │                                            the alias means at the asked time
    ├── ConflictError                            merge found diverging content
    ├── ProtectedByTagError                      a published tag references what would change
    ├── ManifestError                            file changed since the manifest, or a query
    │                                            outside the coverage it records
    ├── IntegrityError                           verify found problems
    ├── ServiceUnavailableError (also ConnectionError)  calibration service unreachable
    ├── MissingDependencyError (also ImportError) an optional extra is not installed
    ├── CollectiveError                          another rank of an MPI collective failed
    └── AccessDeniedError (also PermissionError) web user may not make this change
"""
from __future__ import annotations

__all__ = [
    "PscalibError", "InvalidInputError", "InvalidTimeError", "InvalidNameError",
    "InvalidPayloadError", "InvalidParameterError", "NotFoundError", "StoreNotFoundError",
    "CtypeNotFoundError", "RangeNotFoundError", "VersionNotFoundError",
    "NoValidConstantsError", "AliasNotFoundError", "StoreFormatError", "CorruptStoreError",
    "UnsupportedFormatVersionError", "LegacyFormatError", "StoreExistsError",
    "ReadOnlyError", "StorePermissionError", "StoreIOError", "LockError",
    "LockTimeoutError", "LockUnavailableError", "AliasFileError", "ConflictError",
    "IntegrityError", "MissingDependencyError", "CollectiveError",
    "ServiceUnavailableError", "AccessDeniedError",
    "StateTransitionError", "DeprecatedVersionError",
    "RunNotFoundError", "RunTableError", "AliasMismatchError",
    "AsOfUnavailableError", "PurgedVersionError", "TagNotFoundError", "TagError",
    "ProtectedByTagError", "ManifestError", "OutArrayError",
]


class PscalibError(Exception):
    """Base class of every error pscalib raises on purpose."""


class InvalidInputError(PscalibError, ValueError):
    """An argument has a wrong value or type; fix the call."""


class InvalidTimeError(InvalidInputError):
    """A time stamp that cannot be interpreted or is out of the supported range."""


class InvalidNameError(InvalidInputError):
    """A detector name, calibration type, alias or parameter key breaks a naming rule."""


class InvalidPayloadError(InvalidInputError):
    """Calibration constants that cannot be stored (dtype, emptiness, encoding, size)."""


class OutArrayError(InvalidInputError):
    """The ``out=`` array of a ``get`` cannot take the version's payload (shape, dtype,
    layout, read-only, or a text payload); nothing was read into it."""


class InvalidParameterError(InvalidInputError):
    """A dictpars value of an unsupported type."""


class StateTransitionError(InvalidInputError):
    """A version state change that the rules refuse (docs/format.rst, "Version states")."""


class NotFoundError(PscalibError, LookupError):
    """Something asked for does not exist."""

    def __str__(self) -> str:  # LookupError/KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class StoreNotFoundError(NotFoundError):
    """No store file exists for the given path or detector name."""


class CtypeNotFoundError(NotFoundError):
    """The store has no calibration type of that name."""


class RangeNotFoundError(NotFoundError):
    """The calibration type has no such validity range."""


class VersionNotFoundError(NotFoundError):
    """The range has no such version."""


class DeprecatedVersionError(VersionNotFoundError):
    """``get`` was asked for a deprecated version by number (read it with versobj().calib())."""


class NoValidConstantsError(NotFoundError):
    """No validity range of the calibration type covers the requested time."""


class AliasNotFoundError(NotFoundError):
    """An alias that no alias file defines (at the requested time)."""


class StoreFormatError(PscalibError):
    """The file is not a calibration store pscalib can read."""


class CorruptStoreError(StoreFormatError):
    """The file is damaged or its metadata is inconsistent."""


class UnsupportedFormatVersionError(StoreFormatError):
    """The file was written in a newer format version than this release knows."""


class LegacyFormatError(StoreFormatError):
    """A file that looks like an original LCLS DCS file but breaks its layout."""


class StoreExistsError(PscalibError, FileExistsError):
    """Refusing to create a store where one already exists."""


class ReadOnlyError(PscalibError):
    """A change was asked of a store opened read-only (open it with mode='a')."""


class StorePermissionError(PscalibError, PermissionError):
    """The operating system refused access to a store, lock or directory."""


class StoreIOError(PscalibError, OSError):
    """An I/O failure (such as a full disk) stopped a write; the store is unchanged."""


class LockError(PscalibError):
    """Base class of locking problems."""


class LockTimeoutError(LockError, TimeoutError):
    """Another writer held a store's lock for longer than the timeout."""


class LockUnavailableError(LockError):
    """The filesystem cannot lock files, so no write was attempted."""


class AliasFileError(PscalibError):
    """An alias file is malformed or a change would make it inconsistent."""


class ConflictError(PscalibError):
    """Two stores disagree in a way that needs a human decision."""


class IntegrityError(PscalibError):
    """A store failed verification; the message lists the problems."""


class MissingDependencyError(PscalibError, ImportError):
    """An optional part of pscalib needs a package that is not installed (see the extra)."""


class CollectiveError(PscalibError):
    """An MPI collective read failed on some rank for a reason that is not a pscalib error.

    Every rank of the collective raises it with the same message, which names the failing
    rank and the original exception.
    """


class RunNotFoundError(NotFoundError):
    """A run number that is not in the experiment's run table (or no run table exists)."""


class RunTableError(PscalibError):
    """A run table is malformed or a change would make it inconsistent."""


class AliasMismatchError(PscalibError):
    """A store opened through an alias is asked for a time at which the alias means another
    detector; open the alias at that time instead."""


class ServiceUnavailableError(PscalibError, ConnectionError):
    """The calibration service (``dcs serve``) did not answer, or answered with a server
    error, after the client's bounded retries; nothing was cached from the failed transfer."""


class AsOfUnavailableError(NotFoundError):
    """``get(..., asof=T0)`` cannot be answered: ``T0`` is before the store, before its
    change log began (files written by pscalib before the log existed) or in the future."""


class PurgedVersionError(AsOfUnavailableError):
    """The version an as-of or tag lookup needs was deleted (or purged) since."""



class AccessDeniedError(PscalibError, PermissionError):
    """A web user is not logged in, or the access list does not allow this change."""

class TagNotFoundError(NotFoundError):
    """No tag of that name in the store (or calib directory)."""


class TagError(InvalidInputError):
    """A tag operation the rules refuse (name taken, bad name, changing a published tag)."""


class ProtectedByTagError(PscalibError):
    """A change would delete or alter a version a published tag references; nothing was
    written."""


class ManifestError(PscalibError):
    """A store opened under a manifest (``PSCALIB_MANIFEST``) changed since the manifest was
    written, is not in it, or was asked outside the coverage it records."""
