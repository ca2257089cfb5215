"""Tag pages of the web GUI: list, show, create, publish and delete tags (named frozen
selections, docs/reproducibility.rst) through the library calls of ``dcs tag``.

A tag lives in each store file it was made in; the calib-wide pages (``/gui/tags``) join
the tags of the same name across the served stores, the store pages
(``/gui/d/NAME/tags``) show one store's. A change made in many stores is checked in all of
them first (:func:`~pscalib.store.tags.check_create_tag`,
:func:`~pscalib.store.tags.check_delete_tag`), so a refusal changes no file.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..errors import InvalidInputError, TagNotFoundError
from ..identity import acting_user
from ..store import DCStore
from ..store.layout import range_name, version_name
from ..store.records import TagRow
from ..store.tags import (check_create_tag, check_delete_tag, create_tag, delete_tag,
                          publish_tag, rows_of, validate_tag_name)
from ..timestamps import format_ns, to_ns
from .pages import PREFIX, esc, form, hidden, link, table, url
from .web import Ctx, small_form

if TYPE_CHECKING:  # pragma: no cover
    from .app import Gui

__all__ = ["TagPages"]

#: Stores one create/publish/delete may name (a calib directory has a few hundred).
MAX_STORES = 10_000


class TagPages:
    """The tag routes of ``gui`` (its identity, error pages and write checks)."""

    def __init__(self, gui: "Gui"):
        self.gui = gui

    def routes(self) -> List[Route]:
        w, t, d = self.gui._wrap, f"{PREFIX}/tags", f"{PREFIX}/d/{{name}}/tags"
        return [
            Route(t, w(self.list_page), methods=["GET"]),
            Route(f"{t}/create", w(self.create), methods=["POST"]),
            Route(f"{t}/{{tag}}", w(self.show_page), methods=["GET"]),
            Route(f"{t}/{{tag}}/publish", w(self.publish), methods=["POST"]),
            Route(f"{t}/{{tag}}/delete", w(self.delete), methods=["POST"]),
            Route(d, w(self.list_page), methods=["GET"]),
            Route(f"{d}/{{tag}}", w(self.show_page), methods=["GET"]),
        ]

    # ------------------------------------------------------------- reading
    def _scope(self, request: Request, names: Optional[List[str]] = None) -> Dict[str, Path]:
        """``{detname or alias: store file}``: the named stores, else every store."""
        reg = request.app.state.registry
        if names is None:
            one = request.path_params.get("name")
            names = [one] if one is not None else None
        if names is None:
            return {p.stem: p for p in reg.store_files()}
        if len(names) > MAX_STORES:
            raise InvalidInputError(f"{len(names)} stores named; at most {MAX_STORES:,}")
        return {n: reg.path_of(n) for n in names}

    def _rows(self, request: Request, paths: Dict[str, Path]) -> Dict[str, List[TagRow]]:
        reg = request.app.state.registry
        out = {}
        for n, p in paths.items():
            with reg.entry(p) as ent:
                out[n] = ent.store.backend.tag_rows()
        return out

    def list_page(self, ctx: Ctx, request: Request) -> Response:
        store = request.path_params.get("name")
        rows = self._rows(request, self._scope(request))
        tags: Dict[str, Dict[str, Any]] = {}
        for det, rs in rows.items():
            for r in rs:
                d = tags.setdefault(r.name, {"head": r, "stores": [], "published": [],
                                             "ranges": 0})
                if r.ctype:
                    d["ranges"] += 1
                else:
                    d["stores"].append(det)
                    if r.published:
                        d["published"].append(r.published)
        trows = []
        for name, d in tags.items():
            h, pub = d["head"], d["published"]
            state = ("published " + format_ns(max(pub)) if len(pub) == len(d["stores"])
                     else "open" if not pub else f"published in {len(pub)} of "
                                                 f"{len(d['stores'])} stores")
            trows.append((link(self._href(store, name), name, "tag"), esc(format_ns(h.tsat)),
                          esc(format_ns(h.tscreated)), esc(h.user),
                          f'<span class="state">{esc(state)}</span>',
                          esc(", ".join(d["stores"]) if store is None else d["ranges"]),
                          esc(d["ranges"]) if store is None else "", esc(h.note)))
        head = ("tag", "selection at", "created", "by", "state",
                "stores" if store is None else "ranges", "ranges" if store is None else "",
                "note")
        where = (f"store {link(url('d', store), store)}" if store else
                 f"the {len(rows)} stores of the calib directory")
        body = (f"<p>{len(tags)} tags in {where}. A tag freezes what <code>get</code> "
                f"selects (now, or at an earlier wall time); a published tag and the "
                f"versions it references can no longer be deleted or changed.</p>"
                + table(head, trows, cls="tags") + self._create_form(ctx, store, rows))
        crumbs = ([(url("d", store), store), (url("d", store, "tags"), "tags")] if store
                  else [(url("tags"), "tags")])
        return ctx.page(f"{store} tags" if store else "Tags", body, crumbs=crumbs)

    def _href(self, store: Optional[str], tag: str) -> str:
        return url("d", store, "tags", tag) if store else url("tags", tag)

    def _create_form(self, ctx: Ctx, store: Optional[str], rows: Dict[str, Any]) -> str:
        if not ctx.can_write:
            cls = "no" if self.gui.settings.writes else "ro"
            return (f'<p class="acl {cls}" id="acl">'
                    f'{esc(ctx.why if self.gui.settings.writes else "read-only")}</p>')
        fields = ('<label>name <input name="name" id="tagname" required maxlength="100" '
                  'pattern="[A-Za-z0-9][A-Za-z0-9._\\-]*" placeholder="run17-prod"></label>'
                  '<label>selection at <input name="at" id="tagat" placeholder="now (or an '
                  'earlier wall time, e.g. 2024-05-01T00:00:00Z)" size="40"></label>'
                  '<label>note <input name="note" id="tagnote" size="40"></label>')
        if store:
            fields += hidden(store=store)
        else:
            boxes = "".join(f'<label class="inline"><input type="checkbox" name="store" '
                            f'value="{esc(n)}"> {esc(n)}</label> ' for n in rows)
            fields += ('<label><input type="checkbox" name="all" value="1" id="tagall" '
                       'checked> every store of the calib directory</label>'
                       f'<p class="stores">or only these: {boxes}</p>')
        return ("<h2>Create a tag</h2>"
                + form(url("tags", "create"), fields, "create tag", ctx.csrf,
                       cls="tag-create"))

    def show_page(self, ctx: Ctx, request: Request) -> Response:
        store = request.path_params.get("name")
        name = validate_tag_name(request.path_params["tag"])
        rows = self._rows(request, self._scope(request))
        mine = {det: [r for r in rs if r.name == name] for det, rs in rows.items()}
        mine = {det: rs for det, rs in mine.items() if rs}
        if not mine:
            if store:  # the library's own message for one store
                with request.app.state.registry.use(store) as ent:
                    rows_of(ent.store.backend, name, store)
            raise TagNotFoundError(f"no store of {len(rows)} has a tag {name!r}")
        heads = {det: rs[0] for det, rs in mine.items()}
        h = next(iter(heads.values()))
        srows = [(link(url("d", det), det), esc(format_ns(r.tsat)),
                  f'<span class="state">{esc(_state(r))}</span>', esc(r.user), esc(r.note))
                 for det, r in heads.items()]
        vrows = []
        for det, rs in mine.items():
            for r in rs:
                if not r.ctype:
                    continue
                rng = range_name(r.tsbegin, r.tsend)
                vrows.append((esc(det), esc(r.ctype),
                              link(url("d", det) + f"#r-{r.ctype}-{rng}", rng),
                              link(url("d", det, "v", r.ctype, rng, r.version),
                                   version_name(r.version), "ver"),
                              f'<code title="{esc(r.sha256)}">{esc(r.sha256[:16])}</code>'))
        published = all(r.published for r in heads.values())
        body = (f'<p class="meta">selection at <b id="tsat">{esc(format_ns(h.tsat))}</b> '
                f'&middot; created {esc(format_ns(h.tscreated))} by {esc(h.user)} &middot; '
                f'<span id="tagstate">{"published" if published else "open"}</span></p>'
                + table(("store", "selection at", "state", "by", "note"), srows,
                        cls="tagstores")
                + self._actions(ctx, store, name, heads)
                + f"<h2>Frozen selection: {len(vrows)} ranges</h2>"
                + table(("store", "ctype", "range", "version", "sha256"), vrows,
                        cls="tagrows"))
        crumbs = ([(url("d", store), store), (url("d", store, "tags"), "tags")] if store
                  else [(url("tags"), "tags")])
        return ctx.page(f"Tag {name}", body, crumbs=crumbs + [(self._href(store, name),
                                                               name)])

    def _actions(self, ctx: Ctx, store: Optional[str], name: str,
                 heads: Dict[str, TagRow]) -> str:
        if not ctx.can_write:
            return ""
        keys = hidden(store=store) if store else ""
        out = []
        if any(not r.published for r in heads.values()):
            out.append(form(url("tags", name, "publish"), keys, "publish", ctx.csrf,
                            cls="inline tag-publish",
                            confirm=f"publish tag {name}? It can never be changed or "
                                    f"deleted afterwards."))
        if not any(r.published for r in heads.values()):
            out.append(form(url("tags", name, "delete"), keys, "delete", ctx.csrf,
                            cls="inline tag-delete", confirm=f"delete tag {name}?"))
        else:
            out.append('<span class="acl">published: immutable, cannot be deleted</span>')
        return f'<p class="actions">{" ".join(out)}</p>'

    # ------------------------------------------------------------- changes
    async def create(self, ctx: Ctx, request: Request) -> Response:
        f = await small_form(request)
        user = self.gui._writer(ctx, request, f)
        name = validate_tag_name(str(f.get("name", "")).strip())
        at_text = str(f.get("at", "")).strip()
        at = None if at_text in ("", "now") else to_ns(at_text[:100])
        note = " ".join(str(f.get("note", "")).split())[:2000]
        chosen = [str(s) for s in f.getlist("store")]
        every = f.get("all") == "1"
        if not every and not chosen:
            raise InvalidInputError("choose the stores of the tag, or every store of the "
                                    "calib directory")

        def change() -> str:
            paths = self._scope(request, None if every else chosen)
            if not paths:
                raise InvalidInputError("the calib directory has no stores to tag")
            reg = request.app.state.registry
            for p in paths.values():  # every store first: a refusal changes no file
                with reg.entry(p) as ent:
                    check_create_tag(ent.store, name, at)
            n = 0
            with acting_user(user):
                for p in paths.values():
                    with DCStore(p, mode="a") as cs:
                        n += create_tag(cs, name, at, note)
            return f"tag {name} created in {len(paths)} stores ({n} ranges)"
        msg = await run_in_threadpool(change)
        one = chosen[0] if not every and len(chosen) == 1 else None
        return RedirectResponse(url(*self._base(one), name, done=msg), 303)

    def _base(self, store: Optional[str]) -> tuple:
        return ("d", store, "tags") if store else ("tags",)

    async def publish(self, ctx: Ctx, request: Request) -> Response:
        return await self._tag_change(ctx, request, "publish")

    async def delete(self, ctx: Ctx, request: Request) -> Response:
        return await self._tag_change(ctx, request, "delete")

    async def _tag_change(self, ctx: Ctx, request: Request, op: str) -> Response:
        f = await small_form(request)
        user = self.gui._writer(ctx, request, f)
        name = validate_tag_name(request.path_params["tag"])
        store = str(f["store"]) if f.get("store") else None

        def change() -> str:
            paths = self._scope(request, None if store is None else [store])
            reg = request.app.state.registry
            have = []
            for p in paths.values():  # the stores that have the tag, checked first
                with reg.entry(p) as ent:
                    if store is not None or any(r.name == name
                                                for r in ent.store.backend.tag_rows()):
                        rows_of(ent.store.backend, name, str(p))
                        if op == "delete":
                            check_delete_tag(ent.store, name)
                        have.append(p)
            if not have:
                raise TagNotFoundError(f"no store of {len(paths)} has a tag {name!r}")
            done = 0
            with acting_user(user):
                for p in have:
                    with DCStore(p, mode="a") as cs:
                        if op == "publish":
                            done += publish_tag(cs, name)
                        else:
                            delete_tag(cs, name)
                            done += 1
            if op == "publish":
                return (f"tag {name} published in {done} stores" if done else
                        f"tag {name} was already published")
            return f"tag {name} deleted in {done} stores"
        msg = await run_in_threadpool(change)
        target = url(*self._base(store), name, done=msg) if op == "publish" else \
            url(*self._base(store), done=msg)
        return RedirectResponse(target, 303)



def _state(head: TagRow) -> str:
    return f"published {format_ns(head.published)}" if head.published else "open"
