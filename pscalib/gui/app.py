"""Routes of the web GUI (``/gui``), added to the service app by :func:`gui_routes`.

Read pages work from the calib directory's files alone; changes need the configuration of
:mod:`.settings` (authentication, ACL) and go through the library's transactions with the
web user recorded in history (:func:`pscalib.identity.acting_user`).

This module is longer than 500 lines because every page handler is a method of one
:class:`Gui` object that holds the settings, the sessions and the per-store memo. The tag
pages live in :mod:`.tagpages` and the request plumbing in :mod:`.web`; the next step is
to move the other management handlers (set default, states, upload) the same way.
"""
from __future__ import annotations

import functools
import inspect
import io
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ..cli.cmd_store import merged_history
from ..cli.storecommon import object_path, parse_par
from ..errors import AccessDeniedError, InvalidInputError, PscalibError
from ..names import validate_ctype
from ..ndarrio import format_ndarrio, payload_from_bytes
from ..service.detectors import detectors_doc
from ..store import DCStore, DCVersion
from ..identity import acting_user
from ..store.layout import version_name
from ..timestamps import format_ns
from ..plot.model import state_of, tags_of, time_span, timeline_rows
from ..plot.svg import timeline_svg
from . import auth
from .pages import PREFIX, esc, form, hidden, history_table, layout, link, pars_text, table, url
from .settings import GuiSettings
from .tagpages import TagPages
from .web import Ctx, HttpError
from .web import as_int as _int
from .web import bounded_form as _bounded_form
from .web import one_line as _one_line
from .web import same_origin as _same_origin
from .web import small_form as _small_form
from .web import status_for as _status

__all__ = ["gui_routes", "Gui"]

from .images import render  # matplotlib only when a picture is drawn (plot extra)

_STATIC = Path(__file__).resolve().parent / "static"
_STATIC_TYPES = {"gui.css": "text/css; charset=utf-8",
                 "gui.js": "text/javascript; charset=utf-8"}
#: True when the library has version states (DCVersion.deprecate/validate).
HAS_STATES = callable(getattr(DCVersion, "deprecate", None))
#: History records shown on a store page (all of them: the history page).
RECENT = 15
#: Ranges per ctype on one store page (the timeline always shows all of them).
PAGE = 50


class Gui:
    """The GUI over the app's store registry, configured by ``settings``."""

    def __init__(self, settings: Optional[GuiSettings] = None):
        self.settings = settings or GuiSettings()

    # ------------------------------------------------------------- identity
    def identify(self, request: Request) -> Tuple[Optional[str], Optional[str]]:
        """``(user, csrf basis)``: token > trusted proxy header > session cookie."""
        s = self.settings
        authz = request.headers.get("authorization", "")
        if "token" in s.auth and authz.lower().startswith("bearer "):
            user = auth.check_token(s, authz[7:].strip())
            if user is None:
                raise AccessDeniedError("the bearer token is not valid")
            return user, None  # no cookie involved: no CSRF risk
        if "remote_user" in s.auth and request.client and \
                request.client.host in s.trusted_proxies:
            user = request.headers.get(s.user_header, "").strip()
            if user:
                return user, "proxy|" + user
        if "password" in s.auth:
            cookie = request.cookies.get(auth.SESSION_COOKIE)
            user = auth.session_user(s, cookie)
            if user:
                return user, cookie
        return None, None

    def routes(self) -> List[Route]:
        g = f"{PREFIX}/d/{{name}}"
        return [
            Route("/", lambda r: RedirectResponse(f"{PREFIX}/", 307), methods=["GET"]),
            Route(PREFIX, lambda r: RedirectResponse(f"{PREFIX}/", 307), methods=["GET"]),
            Route(f"{PREFIX}/", self._wrap(self.index), methods=["GET"]),
            Route(f"{PREFIX}/static/{{file}}", self.static, methods=["GET"]),
            Route(f"{PREFIX}/login", self._wrap(self.login_form), methods=["GET"]),
            Route(f"{PREFIX}/login", self._wrap(self.login), methods=["POST"]),
            Route(f"{PREFIX}/logout", self._wrap(self.logout), methods=["POST"]),
            Route(g, self._wrap(self.store_page), methods=["GET"]),
            Route(f"{g}/history", self._wrap(self.history_page), methods=["GET"]),
            Route(f"{g}/v/{{ctype}}/{{rng}}/{{vers:int}}", self._wrap(self.version_page),
                  methods=["GET"]),
            Route(f"{g}/img/{{ctype}}/{{rng}}/{{vers:int}}.png", self._wrap(self.image, True),
                  methods=["GET"]),
            Route(f"{g}/dl/{{ctype}}/{{rng}}/{{vers:int}}.{{fmt}}", self._wrap(self.download,
                                                                              True),
                  methods=["GET"]),
            Route(f"{g}/diff/{{ctype}}/{{rng}}", self._wrap(self.diff_page), methods=["GET"]),
            Route(f"{g}/upload", self._wrap(self.upload_form), methods=["GET"]),
            Route(f"{g}/upload", self._wrap(self.upload), methods=["POST"]),
            Route(f"{g}/set-default", self._wrap(self.set_default), methods=["POST"]),
            Route(f"{g}/state", self._wrap(self.set_state), methods=["POST"]),
        ] + TagPages(self).routes()

    def _wrap(self, handler: Callable, plain: bool = False):
        """Errors -> the library's one-line message on an HTML page (or plain text for
        images and downloads) with a 4xx/5xx status; nothing was changed."""
        is_async = inspect.iscoroutinefunction(handler)

        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            ctx = None
            try:
                ctx = Ctx(self, request)
                if is_async:
                    return await handler(ctx, request)
                # store reads and pictures take a while: never block the event loop
                return await run_in_threadpool(handler, ctx, request)
            except (PscalibError, HttpError) as exc:
                user = ctx.user if ctx else None
                status = _status(exc, user)
                if plain:
                    return Response(_one_line(exc) + "\n", status_code=status,
                                    media_type="text/plain; charset=utf-8")
                back = f'<p>{link(url(), "back to the detector list")}</p>'
                return HTMLResponse(layout(f"Error {status}", back, user,
                                           ctx.csrf if ctx else None, error=_one_line(exc)),
                                    status_code=status, headers={"Cache-Control": "no-store"})
        return endpoint

    # ------------------------------------------------------------- read pages
    def static(self, request: Request) -> Response:
        name = request.path_params["file"]
        if name not in _STATIC_TYPES:  # a fixed list: nothing else is ever opened
            return Response("not found\n", 404, media_type="text/plain")
        return Response((_STATIC / name).read_bytes(), media_type=_STATIC_TYPES[name],
                        headers={"Cache-Control": "public, max-age=300"})

    def index(self, ctx: Ctx, request: Request) -> Response:
        reg = request.app.state.registry
        doc = detectors_doc(reg)
        q = request.query_params.get("q", "").strip()[:200]
        aliases: Dict[str, List[str]] = {}
        for a in doc["aliases"]:
            aliases.setdefault(a.get("detname", ""), []).append(a.get("alias", ""))
        rows = []
        for d in doc["detectors"]:
            names = [d["detname"]] + aliases.get(d["detname"], [])
            if q and not any(q.lower() in n.lower() for n in names):
                continue
            rows.append((link(url("d", d["detname"]), d["detname"], "det"), esc(d["dettype"]),
                         esc(", ".join(aliases.get(d["detname"], [])))))
        search = (f'<form method="get" action="{url()}" class="search"><input id="search" '
                  f'name="q" value="{esc(q)}" placeholder="search detector or alias" '
                  f'autocomplete="off"><button>search</button></form>')
        arows = [(esc(a.get("alias")), link(url("d", a.get("detname", "")), a.get("detname")),
                  esc(a.get("begin") or a.get("tsbegin") or ""), esc(a.get("end") or ""),
                  esc(a.get("file") or "")) for a in doc["aliases"]]
        body = (search + f'<p>{len(rows)} of {len(doc["detectors"])} detectors in '
                f'<code>{esc(reg.calib.name)}</code> &middot; '
                f'{link(url("tags"), "tags of the calib directory")}</p>'
                + table(("detector", "type", "aliases"), rows, cls="detectors")
                + "<h2>Aliases</h2>"
                + table(("alias", "detector", "from", "until", "alias file"), arows,
                        cls="aliases"))
        return ctx.page("Detectors", body)

    def _store(self, request: Request):
        return request.app.state.registry.use(request.path_params["name"])

    def store_page(self, ctx: Ctx, request: Request) -> Response:
        name = request.path_params["name"]
        with self._store(request) as ent:
            cs = ent.store
            det = cs.detname()
            rows = ent.memo.get(("gui-timeline",))
            if rows is None:  # per store file state, like the API's answers
                rows = ent.memo[("gui-timeline",)] = timeline_rows(cs)
            span = time_span(rows)  # one time axis for every ctype of the store
            upload = (" &middot; " + link(url("d", name, "upload"), "upload constants")
                      if ctx.can_write else "")
            parts = [f'<p class="meta">file <code>{esc(cs.path.name)}</code> &middot; '
                     f'{esc(pars_text(cs.dictpars()) or "no parameters")} &middot; '
                     f'{link(url("d", name, "history"), "full history")} &middot; '
                     f'{link(url("d", name, "tags"), "tags")}{upload}</p>',
                     self._manage_hint(ctx)]
            page = _int(request.query_params.get("page", "0"), "page", low=0)
            for ct, bars in rows.items():
                ranges = list(reversed(cs.ctypeobj(ct).ranges()))  # newest first
                # bars are in ranges() order (oldest first): page of each, without
                # formatting every range name again
                where = {b.name: (len(bars) - 1 - i) // PAGE for i, b in enumerate(bars)}

                def href(b, ct=ct, where=where):
                    p = where.get(b.name, 0)
                    return (url("d", name, page=p) if p != page else "") + f"#r-{ct}-{b.name}"
                svg = timeline_svg({ct: bars}, href=href, span=span)
                shown = ranges[page * PAGE:(page + 1) * PAGE]
                pager = _pager(name, page, len(ranges))
                parts.append(f'<section class="ctype" id="ct-{esc(ct)}"><h2>{esc(ct)} '
                             f'<span class="span">{len(ranges)} ranges</span></h2>'
                             f'<div class="timeline">{svg}</div>{pager}'
                             + self._version_table(ctx, ent, name, ct, shown) + "</section>")
            recent = [("", r) for r in cs.history_records()]
            recent += [(ct, r) for ct in cs.ctypes() for r in cs.ctypeobj(ct).history_records()]
            recent.sort(key=lambda x: x[1].tsns)
            parts.append(f"<h2>Recent changes to the store and its ctypes</h2>"
                         f"<p>{link(url('d', name, 'history'), 'full history')} (ranges and "
                         f"versions too)</p>" + history_table(recent[-RECENT:]))
        return ctx.page(det, "".join(parts), crumbs=[(url("d", name), det)])

    def _manage_hint(self, ctx: Ctx) -> str:
        if ctx.can_write:
            return f'<p class="acl ok" id="acl">{esc(ctx.why)}</p>'
        if self.settings.writes:
            return f'<p class="acl no" id="acl">{esc(ctx.why)}</p>'
        return '<p class="acl ro" id="acl">read-only</p>'

    def _version_table(self, ctx: Ctx, ent: Any, name: str, ct: str,
                       ranges: List[Any]) -> str:
        """Version tables of ``ranges`` (one page of a ctype's ranges)."""
        out = []
        for r in ranges:
            rows = []
            d = _range_details(ent, r)
            for v in d["versions"]:
                n, info, state = v["n"], v["info"], v["state"]
                what = (f"{info.dtype} {tuple(info.shape)}" if info.kind == "ndarray"
                        else "text")
                vlink = link(url("d", name, "v", ct, r.range(), n), version_name(n), "ver")
                dls = (link(url("d", name, "dl", ct, r.range(), f"{n}.npy"), ".npy") + " "
                       + link(url("d", name, "dl", ct, r.range(), f"{n}.data"), ".data")
                       if info.kind == "ndarray" else
                       link(url("d", name, "dl", ct, r.range(), f"{n}.txt"), ".txt"))
                is_def = n == d["vdef"]
                rows.append((vlink, "<b>default</b>" if is_def else "", esc(state or ""),
                             esc(", ".join(v["tags"])), esc(format_ns(info.tsprod)),
                             f'<code title="{esc(info.sha256 or "")}">'
                             f'{esc((info.sha256 or "")[:12])}</code>', esc(what),
                             esc(f"{info.nbytes:,}"), esc(v["pars"]), dls,
                             self._actions(ctx, name, ct, r.range(), n, is_def, state)))
            anchor = f"r-{ct}-{r.range()}"
            compare = ""
            if len(rows) > 1:
                opts = "".join(f'<option value="{v["n"]}">{v["n"]}</option>'
                               for v in d["versions"])
                compare = (f'<form method="get" class="compare inline" action="'
                           f'{url("d", name, "diff", ct, r.range())}">compare v<select '
                           f'name="a">{opts}</select> with v<select name="b">{opts}</select>'
                           f'<button>diff</button></form>')
            out.append(f'<div class="range" id="{esc(anchor)}"><h3>{esc(r.range())}'
                       f'<span class="span"> {esc(r.begin())} &rarr; {esc(r.end())}</span>'
                       f'</h3>{compare}'
                       + table(("version", "", "state", "tags", "produced", "sha256",
                                "payload", "bytes", "parameters", "download", ""), rows,
                               cls="versions") + "</div>")
        return "".join(out)

    def _actions(self, ctx: Ctx, name: str, ct: str, rng: str, n: int, is_def: bool,
                 state: Optional[str]) -> str:
        if not ctx.can_write:
            return ""
        keys = hidden(ctype=ct, range=rng, version=n)
        out = []
        if not is_def and state in (None, "valid"):
            out.append(form(url("d", name, "set-default"), keys, "set default", ctx.csrf,
                            cls="inline act-default"))
        if HAS_STATES and state == "candidate":
            out.append(form(url("d", name, "state"), keys + hidden(op="validate") +
                            '<input name="reason" placeholder="reason" size="10">',
                            "validate", ctx.csrf, cls="inline act-validate"))
        if HAS_STATES and state in ("candidate", "valid"):
            out.append(form(url("d", name, "state"), keys + hidden(op="deprecate") +
                            '<input name="reason" placeholder="reason" size="10">',
                            "deprecate", ctx.csrf, cls="inline act-deprecate",
                            confirm=f"deprecate {ct} {rng} v{n}?"))
        return " ".join(out)

    def history_page(self, ctx: Ctx, request: Request) -> Response:
        name = request.path_params["name"]
        with self._store(request) as ent:
            recs = merged_history(ent.store)
            det = ent.store.detname()
        body = f"<p>{len(recs)} records, newest first</p>" + history_table(recs[-2000:])
        return ctx.page(f"{det} history", body,
                        crumbs=[(url("d", name), det), (url("d", name, "history"), "history")])

    def _version(self, cs: DCStore, request: Request, vers: Optional[int] = None) -> DCVersion:
        p = request.path_params
        ct = validate_ctype(p["ctype"])
        return cs.ctypeobj(ct).rangeobj(p["rng"]).versobj(p["vers"] if vers is None else vers)

    def version_page(self, ctx: Ctx, request: Request) -> Response:
        name = request.path_params["name"]
        with self._store(request) as ent:
            cs = ent.store
            v = self._version(cs, request)
            r, ct, n = v.rangeobj(), v.ctype(), v.version()
            info = v.info()
            det = cs.detname()
            meta = table(("", ""), [
                ("object", esc(object_path(v))), ("valid", esc(f"{r.begin()} -> {r.end()}")),
                ("default", "yes" if v.is_default() else f"no (default v{r.versdef()})"),
                ("state", esc(_state(v) or "valid")), ("tags", esc(", ".join(_tags(v)))),
                ("produced", esc(format_ns(info.tsprod))),
                ("sha256", f"<code>{esc(info.sha256 or '')}</code>"),
                ("payload", esc(f"{info.kind} {info.dtype or ''} "
                                f"{tuple(info.shape) if info.shape else ''}")),
                ("bytes", esc(f"{info.nbytes:,}")), ("parameters", esc(pars_text(v.dictpars())))],
                cls="meta")
            hist = history_table(merged_history(r))
            others = [x.version() for x in r.versions() if x.version() != n]
            text = v.calib() if info.kind == "text" else None
        base = ("d", name, "img", ct, r.range(), f"{n}.png")
        if text is None:
            lay = request.query_params.get("layout", "auto")
            view = ('<p class="views">layout: ' + " ".join(
                link(url("d", name, "v", ct, r.range(), n, layout=x), x)
                for x in ("auto", "mosaic", "geometry")) + "</p>"
                f'<img class="figure" id="figure" alt="{esc(ct)} v{n}" '
                f'src="{esc(url(*base, view="figure", layout=lay))}">'
                f'<details><summary>raw image (one pixel per bin)</summary><img class="raw" '
                f'id="raw" src="{esc(url(*base, view="raw", layout=lay))}"></details>')
        else:
            view = f'<pre class="text" id="text">{esc(text[:200_000])}</pre>'
            if ct == "geometry":
                view += (f'<img class="figure" id="figure" alt="geometry layout" '
                         f'src="{esc(url(*base, view="figure"))}">')
        dl = (link(url("d", name, "dl", ct, r.range(), f"{n}.npy"), "download .npy") + " " +
              link(url("d", name, "dl", ct, r.range(), f"{n}.data"), "download NDArrIO .data")
              if text is None else
              link(url("d", name, "dl", ct, r.range(), f"{n}.txt"), "download .txt"))
        cmp = " ".join(link(url("d", name, "diff", ct, r.range(), a=n, b=o), f"diff with v{o}")
                       for o in others)
        body = (meta + f'<p class="downloads">{dl}</p><p class="compare">{cmp}</p>' + view
                + "<h2>History of the range</h2>" + hist)
        return ctx.page(f"{det} {ct} {version_name(n)}", body, crumbs=[
            (url("d", name), det), (url("d", name) + f"#r-{ct}-{r.range()}", r.range())])

    def image(self, ctx: Ctx, request: Request) -> Response:
        q = request.query_params
        view, lay = q.get("view", "figure"), q.get("layout", "auto")
        other = q.get("b")
        if view not in ("figure", "raw") or lay not in ("auto", "mosaic", "geometry"):
            raise InvalidInputError("view must be figure or raw, layout auto, mosaic or "
                                    "geometry")
        with self._store(request) as ent:
            cs = ent.store
            v = self._version(cs, request)
            w = self._version(cs, request, _int(other, "b")) if other else None
            png = render(cs, v, w, view, lay)
        return Response(png, media_type="image/png",
                        headers={"Cache-Control": "private, max-age=60"})

    def download(self, ctx: Ctx, request: Request) -> Response:
        fmt = request.path_params["fmt"]
        if fmt not in ("npy", "data", "txt"):
            raise InvalidInputError(f"download format {fmt!r}: use npy, data or txt")
        with self._store(request) as ent:
            cs = ent.store
            v = self._version(cs, request)
            data, r = v.calib(), v.rangeobj()
            header = {"DETECTOR": cs.detname(), "CALIB_TYPE": v.ctype(), "RANGE": r.range(),
                      "VERSION": version_name(v.version()), "TSPROD": format_ns(v.tsprod())}
        fname = f"{header['DETECTOR']}-{v.ctype()}-{r.range()}-{header['VERSION']}.{fmt}"
        if isinstance(data, str):
            if fmt != "txt":
                raise InvalidInputError("these constants are text: download them as .txt")
            body, mt = data.encode("utf-8"), "text/plain; charset=utf-8"
        elif fmt == "npy":
            buf = io.BytesIO()
            np.save(buf, data, allow_pickle=False)
            body, mt = buf.getvalue(), "application/octet-stream"
        elif fmt == "data":
            body, mt = format_ndarrio(data, header).encode(), "text/plain; charset=utf-8"
        else:
            raise InvalidInputError("these constants are an array: download .npy or .data")
        return Response(body, media_type=mt, headers={
            "Content-Disposition": f'attachment; filename="{fname}"'})

    def diff_page(self, ctx: Ctx, request: Request) -> Response:
        import difflib
        name = request.path_params["name"]
        q = request.query_params
        a, b = _int(q.get("a"), "a"), _int(q.get("b"), "b")
        with self._store(request) as ent:
            cs = ent.store
            va, vb = self._version(cs, request, a), self._version(cs, request, b)
            pa, pb = va.calib(), vb.calib()
            det, r, ct = cs.detname(), va.rangeobj(), va.ctype()
        title = f"{det} {ct} {r.range()}: v{a} vs v{b}"
        if isinstance(pa, str) or isinstance(pb, str):
            if not (isinstance(pa, str) and isinstance(pb, str)):
                raise InvalidInputError("cannot compare text with an array")
            lines = list(difflib.unified_diff(pa.splitlines(), pb.splitlines(), f"v{a}",
                                              f"v{b}", lineterm=""))
            body = (f'<p id="summary">{len(lines)} diff lines</p>'
                    f'<pre class="diff" id="diff">{esc(chr(10).join(lines) or "identical")}'
                    f'</pre>')
        else:
            x, y = np.asarray(pa), np.asarray(pb)
            if x.shape != y.shape:
                raise InvalidInputError(f"cannot compare arrays of shapes {x.shape} and "
                                        f"{y.shape}")
            d = y.astype(np.float64) - x.astype(np.float64)
            nz = int(np.count_nonzero(d))
            src = url("d", name, "img", ct, r.range(), f"{a}.png", view="figure", b=b)
            fin = np.abs(d[np.isfinite(d)])
            body = (f'<p id="summary">{nz} of {d.size} values differ; max |diff| '
                    f'{float(fin.max()) if fin.size else 0:.6g}, mean |diff| '
                    f'{float(fin.mean()) if fin.size else 0:.6g}</p>'
                    f'<img class="figure" id="diffimg" alt="difference" src="{esc(src)}">')
        return ctx.page(title, body, crumbs=[(url("d", name), det),
                                             (url("d", name) + f"#r-{ct}-{r.range()}",
                                              r.range())])

    # ------------------------------------------------------------- login
    def login_form(self, ctx: Ctx, request: Request) -> Response:
        if "password" not in self.settings.auth or not self.settings.users_file:
            modes = ", ".join(self.settings.auth) or "none (read-only)"
            return ctx.page("Log in", f"<p>Password login is not configured here "
                                      f"(authentication: {esc(modes)}).</p>")
        fields = ('<label>user <input name="user" id="user" autocomplete="username"></label>'
                  '<label>password <input name="password" id="password" type="password" '
                  'autocomplete="current-password"></label>'
                  + hidden(next=request.query_params.get("next", f"{PREFIX}/")[:500]))
        return ctx.page("Log in", form(url("login"), fields, "log in", None, cls="login"))

    async def login(self, ctx: Ctx, request: Request) -> Response:
        _same_origin(request)
        f = await _small_form(request)
        user, pw = str(f.get("user", ""))[:200], str(f.get("password", ""))[:1000]
        nxt = str(f.get("next", f"{PREFIX}/"))
        if not nxt.startswith(f"{PREFIX}/") or "//" in nxt or "\\" in nxt:
            nxt = f"{PREFIX}/"  # never redirect off-site
        if "password" not in self.settings.auth:
            raise AccessDeniedError("password login is not configured")
        ok = await run_in_threadpool(auth.check_login, self.settings, user, pw)
        if not ok:
            raise AccessDeniedError("unknown user or wrong password")
        resp = RedirectResponse(nxt + ("&" if "?" in nxt else "?") + "done=logged+in", 303)
        resp.set_cookie(auth.SESSION_COOKIE, auth.make_session(self.settings, user),
                        max_age=auth.SESSION_SECONDS, httponly=True, samesite="strict",
                        secure=self.settings.secure_cookies, path="/")
        return resp

    async def logout(self, ctx: Ctx, request: Request) -> Response:
        f = await _small_form(request)
        auth.check_csrf(self.settings, ctx.basis, f.get("csrf"))
        resp = RedirectResponse(f"{PREFIX}/?done=logged+out", 303)
        resp.delete_cookie(auth.SESSION_COOKIE, path="/")
        return resp

    # ------------------------------------------------------------- changes
    def _writer(self, ctx: Ctx, request: Request, form_data) -> str:
        """The user allowed to change, after the CSRF and origin checks."""
        if ctx.basis is not None:  # cookie or proxy credentials: a form of ours must carry
            _same_origin(request)
            auth.check_csrf(self.settings, ctx.basis, form_data.get("csrf"))
        return auth.require_writer(self.settings, ctx.user)

    def _change(self, request: Request, user: str, fn: Callable[[DCStore], str]) -> Response:
        """Run ``fn(store)`` in one transaction as ``user``; redirect with its message."""
        name = request.path_params["name"]
        path = request.app.state.registry.path_of(name)
        with acting_user(user), DCStore(path, mode="a") as cs, cs.transaction():
            msg = fn(cs)
        return RedirectResponse(url("d", name, done=msg[:300]), 303)

    async def set_default(self, ctx: Ctx, request: Request) -> Response:
        f = await _small_form(request)
        user = self._writer(ctx, request, f)
        ct, rng, n = _keys(f)

        def change(cs: DCStore) -> str:
            r = cs.ctypeobj(ct).rangeobj(rng)
            old = r.versdef()
            r.set_versdef(n)
            return f"default of {ct} {rng}: v{old} -> v{n}"
        return await run_in_threadpool(self._change, request, user, change)

    async def set_state(self, ctx: Ctx, request: Request) -> Response:
        f = await _small_form(request)
        user = self._writer(ctx, request, f)
        if not HAS_STATES:
            raise InvalidInputError("this pscalib has no version states yet; use set default")
        ct, rng, n = _keys(f)
        op = f.get("op")
        reason = str(f.get("reason", "")).strip()[:500] or f"via web GUI by {user}"
        if op not in ("deprecate", "validate"):
            raise InvalidInputError("op must be deprecate or validate")

        def change(cs: DCStore) -> str:
            v = cs.ctypeobj(ct).rangeobj(rng).versobj(n)
            getattr(v, op)(reason)
            return f"{op}d {ct} {rng} v{n}"
        return await run_in_threadpool(self._change, request, user, change)

    def upload_form(self, ctx: Ctx, request: Request) -> Response:
        name = request.path_params["name"]
        auth.require_writer(self.settings, ctx.user)
        with self._store(request) as ent:
            cts, det = ent.store.ctypes(), ent.store.detname()
        opts = "".join(f'<option value="{esc(c)}">' for c in cts)
        fields = (f'<label>file (.npy or NDArrIO text) <input type="file" name="file" '
                  f'id="file" required></label>'
                  f'<label>ctype <input name="ctype" id="ctype" list="ctypes" required>'
                  f'<datalist id="ctypes">{opts}</datalist></label>'
                  '<label>begin <input name="begin" id="begin" placeholder="2024-05-01T00:00:00Z"'
                  ' required></label><label>end <input name="end" id="end" placeholder="open">'
                  '</label><label>parameters (key=value per line)<textarea name="pars" '
                  'id="pars" rows="3"></textarea></label><label>comment <input name="comment" '
                  'id="comment" size="40"></label><label><input type="checkbox" '
                  'name="make_default" value="1" checked> make it the default</label>')
        limit = self.settings.max_upload_bytes / 2**20
        return ctx.page(f"Upload constants to {det}",
                        f"<p>At most {limit:g} MiB.</p>" +
                        form(url("d", name, "upload"), fields, "upload", ctx.csrf,
                             cls="upload", multipart=True),
                        crumbs=[(url("d", name), det)])

    async def upload(self, ctx: Ctx, request: Request) -> Response:
        limit = self.settings.max_upload_bytes
        f = await _bounded_form(request, limit)
        user = self._writer(ctx, request, f)
        up = f.get("file")
        if up is None or isinstance(up, str):
            raise InvalidInputError("choose a file to upload (.npy or NDArrIO text)")
        raw = await up.read(limit + 1)
        if len(raw) > limit:
            raise HttpError(413, f"upload larger than the limit of {limit:,} bytes; nothing "
                                 f"was changed")
        fname = str(up.filename or "upload")[:200]
        ct = validate_ctype(str(f.get("ctype", "")).strip())
        begin = str(f.get("begin", "")).strip()
        end = str(f.get("end", "")).strip() or None
        if not begin:
            raise InvalidInputError("give the begin time of the validity range")
        pars = dict(parse_par(line.strip()) for line in str(f.get("pars", "")).splitlines()
                    if line.strip())
        comment = str(f.get("comment", "")).strip()[:2000] or None
        make_default = f.get("make_default") == "1"
        kind = "text" if ct == "geometry" else "array"

        def change(cs: DCStore) -> str:
            data, fmt = payload_from_bytes(raw, fname, kind)
            v = cs.add_constants(ct, data, begin, None if end in (None, "open") else end, pars,
                                 comment, make_default=make_default)
            if getattr(v, "unchanged", False):
                return f"unchanged: {ct} already has these constants as v{v.version()}"
            return (f"added {ct} {v.rangeobj().range()} v{v.version()} ({fmt}, "
                    f"{len(raw):,} bytes)")
        return await run_in_threadpool(self._change, request, user, change)


# ----------------------------------------------------------------- helpers
_state, _tags = state_of, tags_of  # short names for the table builders


def _pager(name: str, page: int, n: int) -> str:
    pages = (n + PAGE - 1) // PAGE
    if pages <= 1:
        return ""
    links = " ".join(f"<b>{p + 1}</b>" if p == page else link(url("d", name, page=p), p + 1)
                     for p in range(pages))
    return f'<p class="pager">ranges, newest first, {PAGE} per page: {links}</p>'


def _range_details(ent: Any, r: Any) -> Dict[str, Any]:
    """Versions of a range with their metadata, memoized per store file state (the
    registry drops the memo when the file changes)."""
    key = ("gui-range", r.ctype(), r.tsbegin(), r.tsend())
    hit = ent.memo.get(key)
    if hit is None:
        vers = [{"n": v.version(), "info": v.info(), "pars": pars_text(v.dictpars()),
                 "state": _state(v), "tags": _tags(v)} for v in r.versions()]
        hit = ent.memo[key] = {"vdef": r.versdef(), "versions": vers}
    return hit


def _keys(f) -> Tuple[str, str, int]:
    ct = validate_ctype(str(f.get("ctype", "")))
    rng = str(f.get("range", ""))[:200]
    return ct, rng, _int(f.get("version"), "version")


def gui_routes(settings: Optional[GuiSettings] = None) -> List[Route]:
    """The GUI's routes for ``create_app(calib, extra_routes=gui_routes(settings))``."""
    return Gui(settings).routes()
