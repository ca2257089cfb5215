"""StoreWriter: the public write interface of a store inside a transaction.

Get one with :meth:`DCStore.writer() <pscalib.store.dcstore.DCStore.writer>` inside
``with cs.transaction():``. Every change of a store goes through it: the management methods
of :class:`~pscalib.store.dcstore.DCStore` and its handles, merge, copy and the importers.

Two kinds of methods:

* *recorded* operations (``ensure_ctype``, ``add_range``, ``add_version``, ``set_default``,
  ``delete_version``, ``delete_range``, ``delete_ctype``) check their arguments against the
  file, change it and append their history record;
* *plain* operations (``set_par``, ``del_par``, ``set_meta``, ``append_history``) change
  exactly one thing and record nothing, so that a caller can group several changes under
  one history record of its own.

The read methods answer from the transaction's private copy (what the changes so far made
of the file). :attr:`StoreWriter.backend` is the
:class:`~pscalib.store.backend.WritableBackend` itself, for exact bulk copies (importers).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional

from ..errors import (InvalidInputError, InvalidPayloadError, InvalidTimeError, PscalibError,
                      VersionNotFoundError, ReadOnlyError)
from ..names import validate_ctype, validate_parkey
from ..timestamps import OPEN_END, TimeLike, format_ns, now_ns, to_ns, to_ns_or_none
from ..txn.transaction import check_free_space
from . import layout as L
from . import stateops
from .backend import H5_ERRORS, Backend, Key, RangeTable, WritableBackend, store_error
from .dcobjects import DCRange, DCVersion, _parse_vers
from .history import HistoryRecord
from ..identity import whoami
from .states import ADD_STATES, CANDIDATE, VALID, StateInfo
from .tombstones import Tombstone
from .tags import check_unprotected
from .payload import Payload, checksum, normalize_payload, payloads_equal
from .values import decode_par, encode_par, pars_equal

if TYPE_CHECKING:  # pragma: no cover
    from .dcstore import DCStore

__all__ = ["StoreWriter", "AddResult", "Unchanged", "unchanged_key", "add_constants"]


def _describe_payload(data: Payload) -> str:
    if isinstance(data, str):
        return f"text, {len(data.encode('utf-8'))} bytes"
    return f"{data.dtype} {tuple(data.shape)}"


class AddResult(DCVersion):
    """What :meth:`DCStore.add_constants` returns: a DCVersion plus how it was stored.

    Attributes
    ----------
    unchanged
        True if nothing was added: the range's default already held an identical payload
        with the same dictpars (the handle is that default version).
    linked_to
        Key ``(ctype, tsbegin, tsend, version)`` of the version whose stored payload the new
        version shares through an HDF5 hard link, or None if the payload was written.
    """

    __slots__ = ("unchanged", "linked_to")

    def __init__(self, store: "DCStore", key: tuple, unchanged: bool = False,
                 linked_to: Optional[tuple] = None):
        super().__init__(store, key)
        self.unchanged = unchanged
        self.linked_to = linked_to

    def __eq__(self, other: object) -> bool:  # equal to a plain DCVersion of the same key
        return (isinstance(other, DCVersion) and self._store is other._store
                and self._key == other._key)

    def __hash__(self) -> int:
        return hash(("DCVersion", id(self._store), self._key))


class Unchanged(Exception):
    """Raised by :meth:`StoreWriter.add_version` (``force=False``) when the range's default
    already holds the payload: abort the transaction, the file stays untouched."""

    def __init__(self, key: tuple):
        super().__init__(key)
        self.key = key


def default_in(tab: RangeTable, b: int, e: int) -> int:
    """Default version of range ``(b, e)`` in ``tab`` (0 if the range is absent)."""
    i = tab.row(b, e)
    return 0 if i is None else int(tab.defaultv[i])


def unchanged_key(be: Backend, ctype: str, b: int, e: int, sha: str, payload: Payload,
                  pars: Dict[str, Any]) -> Optional[tuple]:
    """Key of the range's default version if it equals (payload, pars), else None."""
    if not be.has_ctype(ctype):
        return None
    tab = be.range_table(ctype)
    cur = default_in(tab, b, e)
    if cur <= 0:
        return None
    key = (ctype, b, e, cur)
    if be.version_info(key).sha256 != sha:
        return None
    have = be.dictpars(key)
    want = {k: decode_par(encode_par(k, v)[0]) for k, v in pars.items()}
    if set(have) != set(want) or not all(pars_equal(have[k], want[k]) for k in want):
        return None
    # confirm by bytes: a damaged stored default must not hide a real add
    return key if payloads_equal(be.payload(key), payload) else None


class StoreWriter:
    """Changes one store inside its transaction (see the module docstring).

    Keys are those of :mod:`pscalib.store.backend`; times are int ns. Arguments are
    expected validated (names, times, payloads normalised): the public methods of
    :class:`~pscalib.store.dcstore.DCStore` do that before calling here.
    """

    __slots__ = ("_store", "_be", "compact")

    def __init__(self, store: "DCStore", backend: WritableBackend):
        self._store = store
        self._be = backend
        #: Rewrite the file compactly on commit (set by deletions and compact()).
        self.compact = False

    @property
    def backend(self) -> WritableBackend:
        """The writable backend of the transaction's private copy (no history, no checks)."""
        return self._be

    def _changed(self, ctype: str) -> None:
        self._store._lookup.invalidate(ctype)

    # ------------------------------------------------------------------ reads
    def meta(self) -> Dict[str, Any]:
        return self._be.meta()

    def has_ctype(self, ctype: str) -> bool:
        return self._be.has_ctype(ctype)

    def range_table(self, ctype: str) -> RangeTable:
        return self._be.range_table(ctype)

    def versions(self, ctype: str, tsbegin: int, tsend: int) -> List[int]:
        return self._be.versions(ctype, tsbegin, tsend)

    def default_of(self, ctype: str, tsbegin: int, tsend: int) -> int:
        """Default version of the range (0 if it has none or does not exist)."""
        return default_in(self._be.range_table(ctype), tsbegin, tsend)

    def dictpars(self, key: Key) -> Dict[str, Any]:
        return self._be.dictpars(key)

    def version_state(self, key: Key) -> StateInfo:
        return self._be.version_state(key)

    def tombstones(self) -> List[Tombstone]:
        return self._be.tombstones()

    def last_version(self, ctype: str, tsbegin: int, tsend: int) -> int:
        return self._be.last_version(ctype, tsbegin, tsend)

    def set_last_version(self, ctype: str, tsbegin: int, tsend: int, version: int) -> None:
        """Raise the range's highest-ever version number (no history record)."""
        self._be.set_last_version(ctype, tsbegin, tsend, version)

    # ------------------------------------------------------- plain operations
    def set_par(self, key: Key, name: str, value: Any) -> None:
        """Set one parameter of the object ``key`` (no history record)."""
        if len(key) == 4:
            check_unprotected(self._be, key, f"set parameter {name!r} of")
        self._be.set_par(key, name, value)

    def del_par(self, key: Key, name: str) -> None:
        """Delete one parameter of the object ``key`` (no history record)."""
        if len(key) == 4:
            check_unprotected(self._be, key, f"delete parameter {name!r} of")
        self._be.del_par(key, name)

    def set_meta(self, name: str, value: Any) -> None:
        """Set (None: remove) a root metadata item (no history record)."""
        self._be.set_meta(name, value)

    def append_history(self, key: Key, action: str, record: str, *,
                       tsns: Optional[int] = None, user: Optional[str] = None,
                       host: Optional[str] = None) -> HistoryRecord:
        """Append a history record to the object ``key``."""
        return self._be.append_history(key, action, record, tsns=tsns, user=user, host=host)

    def compact_on_commit(self) -> None:
        """Rewrite the file compactly when the transaction commits."""
        self.compact = True

    # ---------------------------------------------------- recorded operations
    def ensure_ctype(self, ctype: str) -> bool:
        """Create ``ctype`` if missing (history ``add_ctype``); True if it was created."""
        be = self._be
        if not be.has_ctype(ctype):
            be.create_ctype(ctype)
            be.append_history((), "add_ctype", ctype)
            self._changed(ctype)
            return True
        return False

    def add_range(self, ctype: str, b: int, e: int, comment: Optional[str] = None) -> DCRange:
        """Create the empty range ``[b, e)`` (and ``ctype`` if missing); history
        ``add_range`` at the type, with `` - comment`` appended when given."""
        self.ensure_ctype(ctype)
        be = self._be
        tab = be.range_table(ctype)
        if tab.row(b, e) is not None:
            raise InvalidInputError(f"{ctype!r} already has range {L.range_name(b, e)}")
        self._create_range(ctype, b, e, comment)
        self._changed(ctype)
        return DCRange(self._store, ctype, b, e)

    def _create_range(self, ctype: str, b: int, e: int, comment: Optional[str] = None
                      ) -> None:
        """A new range group; after a deletion its numbers continue above the deleted ones
        (the highest version number its tombstones mention)."""
        be = self._be
        be.create_range(ctype, b, e)
        last = stateops.first_free_version(be, (ctype, b, e))
        note = ""
        if last:
            be.set_last_version(ctype, b, e, last)
            note = f" (re-created: numbers continue after v{last:04d}, see tombstones)"
        be.append_history((ctype,), "add_range", L.range_name(b, e) + note
                          + (f" - {comment}" if comment else ""))

    def add_version(self, ctype: str, payload: Payload, b: int, e: int, tp: int, sha: str,
                    pars: Dict[str, Any], comment: Optional[str], make_default: bool,
                    version: Optional[int], link_to: Optional[tuple] = None,
                    force: bool = True, state: str = VALID,
                    auto_default: bool = True) -> AddResult:
        """Add a version of ``payload`` (checksum ``sha``, tsprod ``tp``) to range
        ``[b, e)``, creating type and range as needed; history ``add_version``.

        ``version`` None takes one above the highest ever used; ``link_to`` None looks for
        an identical stored payload to share. With ``force=False`` (and no ``version``) an
        add identical to the range's default raises :class:`Unchanged` before any write.
        ``state`` is ``'valid'`` or ``'candidate'`` (never the default); ``auto_default``
        False (merge) never changes the default, whatever ``make_default`` says.
        """
        be = self._be
        if not force and version is None:  # checked before any write: abort leaves nothing
            same = unchanged_key(be, ctype, b, e, sha, payload, pars)
            if same is not None:
                raise Unchanged(same)
        self.ensure_ctype(ctype)
        rkey = (ctype, b, e)
        tab = be.range_table(ctype)
        exists = tab.row(b, e) is not None
        if not exists:
            self._create_range(ctype, b, e)
            current_default = 0
        else:
            current_default = default_in(tab, b, e)
        if version is None:
            version = be.last_version(ctype, b, e) + 1
        elif version in be.versions(ctype, b, e):
            raise InvalidInputError(f"range {L.range_name(b, e)} of {ctype!r} already has "
                                    f"version {version}")
        key = rkey + (version,)
        if link_to is None:
            link_to = be.find_identical(sha, payload)
        be.create_version(key, payload, tp, sha, link_to=link_to)
        if state != VALID:
            stateops.ensure_format(be)
            be.set_state(key, StateInfo(state, now_ns(), whoami(),
                                        comment or f"added as {state}"))
        be.index_payload(sha, key)
        for k, val in pars.items():
            be.set_par(key, k, val)
        # only a valid version can be the default (the default invariant)
        becomes_default = state == VALID and auto_default and (make_default or
                                                               current_default == 0)
        if becomes_default:
            be.set_default(ctype, b, e, version)
        rec = (f"{L.version_name(version)} {_describe_payload(payload)} sha256:{sha[:16]} "
               f"tsprod {format_ns(tp)}{' (default)' if becomes_default else ''}"
               f"{'' if state == VALID else f' ({state})'}")
        if link_to is not None:
            rec += f" (payload shared with {L.h5path(link_to)})"
        if comment:
            rec += f" - {comment}"
        be.append_history(rkey, "add_version", rec)
        self._changed(ctype)
        return AddResult(self._store, key, linked_to=link_to)

    def set_default(self, ctype: str, b: int, e: int, version: int, *,
                    action: str = "set_default", record: Optional[str] = None) -> int:
        """Make ``version`` the range's default; returns the previous default.

        History ``action`` with ``record`` (default ``'v0001 -> v0002'``); nothing is
        written or recorded when it already is the default.
        """
        rkey = (ctype, b, e)
        st = self._store
        st._require_range(rkey)
        be = self._be
        if version not in be.versions(*rkey):
            raise VersionNotFoundError(
                f"cannot make version {version} the default of range "
                f"{L.range_name(*rkey[1:3])} of {rkey[0]!r}: it has versions "
                f"{be.versions(*rkey) or 'none'}")
        stateops.require_valid_default(be, rkey + (version,))
        old = st._default_of(rkey)
        if old == version:
            return old
        be.set_default(ctype, b, e, version)
        be.append_history(rkey, action, record or f"v{old:04d} -> v{version:04d}")
        self._changed(ctype)
        return old

    def delete_version(self, key: Key) -> None:
        """Delete a version (a deleted default passes to the highest remaining one);
        history ``del_version`` at the range; the file is compacted on commit."""
        st = self._store
        st._require_version(key)
        be = self._be
        check_unprotected(be, key, "delete")
        rkey = key[:3]
        version = key[3]
        old_default = st._default_of(rkey)
        stateops.bury(be, stateops.tombstones_for(be, key,
                                                  f"del_version {L.version_name(version)}"))
        be.delete_version(key)
        be.forget_payloads(*key)
        note = ""
        if old_default == version:
            new = stateops.fix_default(be, rkey, "deleted")
            note = (f"; default is now v{new:04d}" if new else
                    "; range has no valid version left and is ignored by get")
        be.append_history(rkey, "del_version", f"{L.version_name(version)}{note}")
        self._changed(rkey[0])
        self.compact = True

    def delete_range(self, ctype: str, b: int, e: int) -> None:
        """Delete a range with its versions; history ``del_range`` at the type."""
        rkey = (ctype, b, e)
        self._store._require_range(rkey)
        be = self._be
        check_unprotected(be, rkey, "delete")
        vs = be.versions(*rkey)
        stateops.bury(be, stateops.tombstones_for(
            be, rkey, f"del_range {L.range_name(b, e)} (versions {vs or 'none'})"))
        be.delete_range(*rkey)
        be.forget_payloads(*rkey)
        be.append_history((ctype,), "del_range",
                          f"{L.range_name(b, e)} (versions {vs or 'none'})")
        self._changed(ctype)
        self.compact = True

    def delete_ctype(self, ctype: str) -> None:
        """Delete a type with all its ranges and versions; history ``del_ctype``."""
        self._store._require_ctype(ctype)
        be = self._be
        check_unprotected(be, (ctype,), "delete")
        n = len(be.range_table(ctype).tsbegin)
        stateops.bury(be, stateops.tombstones_for(be, (ctype,), f"del_ctype {ctype}"))
        be.delete_ctype(ctype)
        be.forget_payloads(ctype)
        be.append_history((), "del_ctype", f"{ctype} ({n} ranges)")
        self._changed(ctype)
        self.compact = True

    def set_state(self, key: Key, new: str, reason: str, make_default: bool = True, *,
                  info: Optional[StateInfo] = None, note: str = "",
                  defaults: bool = True) -> None:
        """Move a version to state ``new`` (the transition rules of
        :mod:`pscalib.store.states`); history ``validate``/``deprecate`` at the version and
        ``set_default`` at the range when the default moves (``defaults=False``: never).
        ``info`` (merge) gives the time, user and reason to keep."""
        self._store._require_version(key)
        stateops.change_state(self._be, key, new, reason, make_default, info=info,
                              note=note, defaults=defaults)
        self._changed(key[0])

    def clear_default(self, ctype: str, b: int, e: int, *, action: str = "set_default",
                      record: Optional[str] = None) -> int:
        """Set the default to 0: the range has no valid version (get ignores it); returns
        the previous default."""
        old = self.default_of(ctype, b, e)
        if old:
            self._be.set_default(ctype, b, e, 0)
            self._be.append_history((ctype, b, e), action,
                                    record or f"v{old:04d} -> v0000 (no valid version)")
            self._changed(ctype)
        return old

    def set_state_attrs(self, key: Key, info: StateInfo) -> None:
        """Overwrite a version's state attributes (merge copies them; no history)."""
        stateops.ensure_format(self._be)
        self._be.set_state(key, info)

    def add_tombstones(self, rows: List[Tombstone]) -> None:
        """Append tombstones (merge carries them; no history record)."""
        stateops.bury(self._be, rows)

    def create_range_recorded(self, ctype: str, b: int, e: int, comment: str) -> None:
        """Like :meth:`add_range` without the existence check (merge plans it)."""
        self.ensure_ctype(ctype)
        self._create_range(ctype, b, e, comment)
        self._changed(ctype)


def add_constants(store: "DCStore", ctype: str, data: Any, tsbegin: TimeLike,
                  tsend: Optional[TimeLike] = None, dictpars: Optional[Dict[str, Any]] = None,
                  comment: Optional[str] = None, *, make_default: bool = True,
                  tsprod: Optional[TimeLike] = None, version: Optional[int] = None,
                  force: bool = False, state: str = VALID) -> AddResult:
    """Validate, then add in a transaction: see :meth:`DCStore.add_constants`."""
    if store.mode == "r":  # before judging the data: the store's mode is the first problem
        raise ReadOnlyError(f"{store.path} is open read-only; open it with mode='a' to "
                            f"change it")
    validate_ctype(ctype)
    payload = normalize_payload(data)
    b = to_ns(tsbegin)
    e = to_ns_or_none(tsend)
    e = OPEN_END if e is None else e
    if e <= b:
        raise InvalidTimeError(f"range end {format_ns(e)} is not after its begin {format_ns(b)}")
    tp = now_ns() if tsprod is None else to_ns(tsprod)
    if dictpars is not None and not isinstance(dictpars, dict):
        raise InvalidInputError(f"dictpars must be a dict, got {type(dictpars).__name__}")
    pars = dict(dictpars or {})
    for k, val in pars.items():
        validate_parkey(k)
        encode_par(k, val)
    if version is not None:
        version = _parse_vers(version)
    if comment is not None and not isinstance(comment, str):
        raise InvalidInputError("comment must be a string")
    if state not in ADD_STATES:
        raise InvalidInputError(f"a new version's state must be 'valid' or 'candidate', "
                                f"got {state!r} (deprecate() retires an existing one)")
    if state == CANDIDATE:
        force = True  # the unchanged check compares with the (valid) default
    nbytes = len(payload.encode()) if isinstance(payload, str) else payload.nbytes
    check_free_space(store.path, nbytes)  # before hashing: a huge array fails fast
    try:
        sha = checksum(payload)
    except MemoryError:
        raise InvalidPayloadError(f"the array ({nbytes} bytes) does not fit in memory; "
                                  f"nothing was written") from None
    # The unchanged check reads the writer's private copy, never the read-only handle:
    # there its metadata reads would first trigger the whole-file heap scan (heapcheck),
    # which costs as much as the copy it would save. Inside the caller's transaction it
    # must answer here: raising Unchanged there would roll back the whole transaction.
    if store._txn is not None and not force and version is None:
        same = unchanged_key(store.writer().backend, ctype, b, e, sha, payload, pars)
        if same is not None:
            return AddResult(store, same, unchanged=True)
    try:
        with store.transaction():
            store._txn.check_space(nbytes)  # type: ignore[union-attr]
            return store.writer().add_version(ctype, payload, b, e, tp, sha, pars, comment,
                                              make_default, version, force=force,
                                              state=state)
    except Unchanged as exc:  # the transaction was aborted: the file is untouched
        return AddResult(store, exc.key, unchanged=True)
    except H5_ERRORS as exc:  # e.g. a damaged payload index met while writing
        if isinstance(exc, PscalibError):
            raise
        raise store_error(exc, str(store.path), f"add {ctype} constants to") from None
