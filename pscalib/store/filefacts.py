"""What an unchanged store file has already said, kept per file identity.

Opening a store and reading one constant is a hot path (an analysis job opens the store
of each run). Reading a store's root attributes, checking its first heap collection and
reading a range index cost more than the payload of a small constant, and give the same
answer every time the file is unchanged. The answers are kept here per *identity* of the
file a reader has open: ``(dev, inode, size, mtime_ns, ctime_ns)`` from its descriptor
(:func:`pscalib.store.safety.file_identity`), the same identity ``refresh()`` uses to
notice another process's commit. ctime changes with every modification and no user can
set it; a copy-on-write commit writes a new inode. Files changed in place (format 4) are
read through a file object and have no identity here: they are never cached.

Only read-only handles use the facts; writers read the file itself.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, Optional, Set, Tuple

__all__ = ["FileFacts", "facts_for"]

Identity = Tuple[int, ...]


class FileFacts:
    """Facts about one unchanged file: paths found safe, the head check passed, the root
    attributes and range indexes read."""

    __slots__ = ("safe", "head_ok", "root", "tables")

    def __init__(self) -> None:
        self.safe: Set[str] = set()  # paths whose links and datasets passed safety checks
        self.head_ok = False  # heapcheck.check_head found nothing that would hang HDF5
        self.root: Optional[Tuple[Any, Any]] = None  # (format, format_version) attributes
        self.tables: Dict[str, Any] = {}  # ctype -> its RangeTable (read-only arrays)


_FACTS: "OrderedDict[Identity, FileFacts]" = OrderedDict()
_FACTS_MAX = 64


def facts_for(ident: Optional[Identity]) -> Optional[FileFacts]:
    """The facts of the file with identity ``ident`` (new, empty ones the first time);
    None when the identity is unknown (nothing is cached then)."""
    if ident is None:
        return None
    hit = _FACTS.get(ident)
    if hit is None:
        hit = _FACTS[ident] = FileFacts()
        while len(_FACTS) > _FACTS_MAX:
            _FACTS.popitem(last=False)
    else:
        _FACTS.move_to_end(ident)
    return hit
