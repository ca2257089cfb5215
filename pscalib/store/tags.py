"""Tags: named, frozen selections kept in the store file (docs/reproducibility.rst).

A tag records, for every range ``get`` could select at its time ``tsat``, the version and
its sha256 (rows of ``/_tags``, see :mod:`pscalib.store.records`). ``get(ctype, t,
tag=NAME)`` applies the selection rule to those rows only, so it answers what plain ``get``
answered at ``tsat``. A published tag is immutable, and so is every version it references:
deleting it (directly, with its range or type, by ``dcs purge``) or changing its
parameters raises :class:`~pscalib.errors.ProtectedByTagError` inside the transaction, which
then writes nothing.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from ..errors import ProtectedByTagError, TagError, TagNotFoundError
from ..identity import whoami
from ..timestamps import format_ns, now_ns
from . import layout as L
from .backend import Backend, Key, WritableBackend
from .asof import cached, checked
from .changelog import Selection, check_asof, current_selection, index_of, payload_key, pick
from .changelog import replay
from .records import TagRow

if TYPE_CHECKING:  # pragma: no cover
    from .dcstore import DCStore
    from .writer import StoreWriter

__all__ = ["validate_tag_name", "tag_names", "rows_of", "create_tag", "publish_tag",
           "delete_tag", "check_create_tag", "check_delete_tag", "check_unprotected",
           "tag_key", "tags_of_version", "version_tags", "carry_tags", "tags_to_carry",
           "keep_whole_tags"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def validate_tag_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise TagError(f"bad tag name {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
                       f"starting with a letter or digit")
    return name


def tag_names(be: Backend) -> List[str]:
    """Names of the tags stored in the file, in creation order."""
    seen: Dict[str, None] = {}
    for r in be.tag_rows():
        seen.setdefault(r.name, None)
    return list(seen)


def rows_of(be: Backend, name: str, what: str = "") -> List[TagRow]:
    """The rows of tag ``name`` (header first), or TagNotFoundError."""
    rows = [r for r in be.tag_rows() if r.name == name]
    if not rows:
        have = tag_names(be)
        raise TagNotFoundError(f"{what or be.filename} has no tag {name!r}; it has "
                               f"{', '.join(have) if have else 'no tags'}")
    return rows


def _selection_at(store: "DCStore", be: Backend, at: Optional[int]) -> Tuple[int, Selection]:
    if at is None:
        return now_ns(), current_selection(be)
    _, log = check_asof(be, at, store.tscfile(), str(store.path))
    return at, replay(log, at)


def _plan(store: "DCStore", be: Backend, name: str, at: Optional[int]
          ) -> Tuple[int, Selection]:
    """``(tsat, selection)`` of a new tag ``name``, or the reason it cannot be made."""
    validate_tag_name(name)
    if any(r.name == name for r in be.tag_rows()):
        raise TagError(f"{store.path} already has a tag {name!r}; choose another name "
                       f"(tags are never redefined)")
    tsat, sel = _selection_at(store, be, at)
    for k, (v, sha) in sel.items():  # a frozen selection must still be readable
        payload_key(be, k + (v,), sha, f"tag {name!r} at {format_ns(tsat)}")
    return tsat, sel


def check_create_tag(store: "DCStore", name: str, at: Optional[int] = None) -> int:
    """Raise what :func:`create_tag` would raise, writing nothing (a tag made in many
    stores is checked in all of them first); returns the number of ranges it would
    reference now."""
    return len(_plan(store, store._backend_for_read(), name, at)[1])


def check_delete_tag(store: "DCStore", name: str) -> None:
    """Raise what :func:`delete_tag` would raise (unknown or published tag), writing
    nothing."""
    _deletable(store, store._backend_for_read(), name)


def _deletable(store: "DCStore", be: Backend, name: str) -> None:
    mine = rows_of(be, name, str(store.path))
    if mine[0].published:
        raise ProtectedByTagError(
            f"tag {name!r} of {store.path} was published at "
            f"{format_ns(mine[0].published)} and cannot be deleted; nothing was changed")


def create_tag(store: "DCStore", name: str, at: Optional[int] = None, note: str = "") -> int:
    """Freeze what ``get`` selects now (or at wall time ``at``, from the change log) as tag
    ``name`` in this store; returns the number of ranges it references."""
    validate_tag_name(name)
    with store.transaction():
        w = store.writer()
        be = w.backend
        rows = be.tag_rows()
        tsat, sel = _plan(store, be, name, at)
        made, user = now_ns(), whoami()
        new = [TagRow(name, "", 0, 0, 0, "", tsat, made, user, 0, note)]
        new += [TagRow(name, c, b, e, v, sha, tsat, made, user, 0, note)
                for (c, b, e), (v, sha) in sorted(sel.items())]
        be.write_tag_rows(rows + new)
        w.append_history((), "tag_create", f"{name}: {len(sel)} ranges as selected at "
                         f"{format_ns(tsat)}" + (f" - {note}" if note else ""))
    return len(sel)


def publish_tag(store: "DCStore", name: str) -> bool:
    """Make tag ``name`` immutable; False if it already was published."""
    with store.transaction():
        w = store.writer()
        be = w.backend
        rows_of(be, name, str(store.path))
        rows = be.tag_rows()
        if any(r.name == name and r.published for r in rows):
            return False
        t = now_ns()
        be.write_tag_rows([r._replace(published=t) if r.name == name else r for r in rows])
        w.append_history((), "tag_publish", f"{name}: published, its versions can no longer "
                         f"be deleted or changed")
    return True


def delete_tag(store: "DCStore", name: str) -> None:
    """Remove an unpublished tag (a published one is refused)."""
    with store.transaction():
        w = store.writer()
        be = w.backend
        _deletable(store, be, name)
        be.write_tag_rows([r for r in be.tag_rows() if r.name != name])
        w.append_history((), "tag_delete", name)


def check_unprotected(be: Backend, key: Key, action: str) -> None:
    """Refuse ``action`` on the object ``key`` when a published tag references it (or a
    version inside it)."""
    n = len(key)
    hits = [r for r in be.tag_rows() if r.published and r.ctype and r.key[:n] == tuple(key)]
    if hits:
        names = sorted({r.name for r in hits})
        r = hits[0]
        raise ProtectedByTagError(
            f"cannot {action} {L.h5path(tuple(key))}: published tag(s) {', '.join(names)} "
            f"reference version {r.version} of range {L.range_name(r.tsbegin, r.tsend)} of "
            f"{r.ctype!r}; published tags are immutable (deprecate the version instead); "
            f"nothing was changed")


def tags_of_version(be: Backend, key: Key) -> List[str]:
    """Names of the tags referencing version ``key``."""
    return sorted({r.name for r in be.tag_rows() if r.ctype and r.key == tuple(key)})


def version_tags(store: "DCStore", key: Key) -> List[str]:
    """:func:`tags_of_version` from one read of the tag rows per file state (a timeline
    asks for every version of the store)."""
    be = store._backend_for_read()
    if store._txn is not None:  # tag rows may change inside a transaction: read them
        return tags_of_version(be, key)

    def build() -> Dict[tuple, List[str]]:
        out: Dict[tuple, set] = {}
        for r in be.tag_rows():
            if r.ctype:
                out.setdefault(r.key, set()).add(r.name)
        return {k: sorted(v) for k, v in out.items()}
    return list(cached(store, ("version-tags",), build).get(tuple(key), []))


def tag_key(store: "DCStore", ctype: str, t: int, name: str) -> tuple:
    """Key of the version tag ``name`` selects for ``ctype`` at ``t``."""
    be = store._backend_for_read()

    def build():
        rows = rows_of(be, name, str(store.path))
        return index_of({(r.ctype, r.tsbegin, r.tsend): (r.version, r.sha256)
                         for r in rows if r.ctype}, ctype)
    ranges, idx = cached(store, ("tag", name, ctype), build)
    key, sha = pick(ranges, idx, ctype, t, f"tag {name!r} of {store.path}")
    return checked(store, be, key, sha, lambda: f"tag {name!r}")


def tags_to_carry(src: Backend, be: Backend) -> Tuple[List[TagRow], List[str]]:
    """The rule of a merge (docs/reproducibility.rst, "Copy and merge"): the rows of the
    tags of ``src`` to add to ``be`` and the names of those that cannot be carried.

    A tag travels when ``be`` has no tag of that name and every version it references is
    in ``be`` with the same checksum (the version number may differ: the rows are
    renumbered). A tag of the same name and the same selection is there already (nothing to
    do); one of the same name and another selection is not carried (tags are never
    redefined). Published tags stay published.
    """
    mine: Dict[str, set] = {}
    for r in be.tag_rows():
        if r.ctype:
            mine.setdefault(r.name, set()).add((r.ctype, r.tsbegin, r.tsend, r.sha256))
        else:
            mine.setdefault(r.name, set())
    add: List[TagRow] = []
    skipped: List[str] = []
    for name in tag_names(src):
        rows = [r for r in src.tag_rows() if r.name == name]
        if name in mine:
            if mine[name] != {(r.ctype, r.tsbegin, r.tsend, r.sha256) for r in rows
                              if r.ctype}:
                skipped.append(name)
            continue
        mapped = []
        for r in rows:
            v = r.version if not r.ctype else _same_payload(be, r)
            if v is None:
                skipped.append(name)
                break
            mapped.append(r._replace(version=v))
        else:
            add += mapped
    return add, skipped


def carry_tags(src: Backend, w: "StoreWriter") -> Tuple[List[str], List[str]]:
    """Add the tags of ``src`` to the writer's file by the rule of :func:`tags_to_carry`;
    returns ``(carried, not carried)`` tag names."""
    be = w.backend
    add, skipped = tags_to_carry(src, be)
    if add:
        be.write_tag_rows(be.tag_rows() + add)
    return list(dict.fromkeys(r.name for r in add)), skipped


def _same_payload(be: Backend, r: TagRow) -> Optional[int]:
    if not be.has_ctype(r.ctype) or be.range_table(r.ctype).row(r.tsbegin, r.tsend) is None:
        return None
    vs = be.versions(r.ctype, r.tsbegin, r.tsend)
    order = ([r.version] if r.version in vs else []) + [v for v in vs if v != r.version]
    for v in order:
        if be.version_info((r.ctype, r.tsbegin, r.tsend, v)).sha256 == r.sha256:
            return v
    return None


def keep_whole_tags(be: WritableBackend) -> List[str]:
    """After a partial copy: drop the tags that reference a version the copy left out (a
    partial tag would answer differently); returns their names."""
    rows = be.tag_rows()
    bad = sorted({r.name for r in rows if r.ctype and _same_payload(be, r) != r.version})
    if bad:
        be.write_tag_rows([r for r in rows if r.name not in bad])
    return bad
