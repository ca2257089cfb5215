"""HTML of the web GUI: one layout and small builders (server-rendered, escaped)."""
from __future__ import annotations

from html import escape
from typing import Any, Dict, Iterable, List, Optional, Sequence
from urllib.parse import quote

from ..timestamps import format_ns

__all__ = ["layout", "table", "form", "link", "esc", "url", "pars_text", "error_page"]

PREFIX = "/gui"


def esc(x: Any) -> str:
    return escape(str(x), quote=True)


def url(*parts: Any, **query: Any) -> str:
    """``/gui/part/part?k=v`` with every part percent-encoded."""
    path = PREFIX + ("".join("/" + quote(str(p), safe="") for p in parts) or "/")
    q = "&".join(f"{quote(k)}={quote(str(v), safe='')}" for k, v in query.items()
                 if v is not None)
    return path + ("?" + q if q else "")


def link(href: str, text: Any, cls: str = "") -> str:
    c = f' class="{esc(cls)}"' if cls else ""
    return f'<a href="{esc(href)}"{c}>{esc(text)}</a>'


def pars_text(pars: Dict[str, Any]) -> str:
    return ", ".join(f"{k}={v.tolist() if hasattr(v, 'tolist') else v}"
                     for k, v in pars.items())


def table(head: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "",
          raw: bool = True) -> str:
    """A table; cells are HTML already when ``raw`` (builders escape what they insert)."""
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else esc(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f'<table class="{esc(cls)}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def form(action: str, fields: str, button: str, csrf: Optional[str], cls: str = "",
         multipart: bool = False, confirm: Optional[str] = None) -> str:
    """A POST form with the CSRF token as a hidden field."""
    enc = ' enctype="multipart/form-data"' if multipart else ""
    conf = f' data-confirm="{esc(confirm)}"' if confirm else ""
    token = f'<input type="hidden" name="csrf" value="{esc(csrf)}">' if csrf else ""
    return (f'<form method="post" action="{esc(action)}" class="{esc(cls)}"{enc}{conf}>'
            f'{token}{fields}<button type="submit">{esc(button)}</button></form>')


def hidden(**kv: Any) -> str:
    return "".join(f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">'
                   for k, v in kv.items())


def layout(title: str, body: str, user: Optional[str], csrf: Optional[str] = None,
           crumbs: Sequence[tuple] = (), message: Optional[str] = None,
           error: Optional[str] = None) -> str:
    """The whole page: header with navigation and login state, messages, body."""
    nav = " / ".join([link(url(), "detectors")] + [link(h, t) for h, t in crumbs])
    if user:
        who = (f'<span class="user">logged in as <b id="who">{esc(user)}</b></span> '
               + form(url("logout"), "", "log out", csrf, cls="inline"))
    else:
        who = link(url("login"), "log in", cls="login")
    msg = f'<p class="message" id="message">{esc(message)}</p>' if message else ""
    err = f'<p class="error" id="error">{esc(error)}</p>' if error else ""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{esc(title)} - pscalib</title>'
            f'<link rel="stylesheet" href="{PREFIX}/static/gui.css">'
            f'<script src="{PREFIX}/static/gui.js" defer></script></head><body>'
            f'<header><span class="brand">pscalib</span> <nav>{nav}</nav>'
            f'<span class="who">{who}</span></header><main><h1>{esc(title)}</h1>{err}{msg}'
            f'{body}</main></body></html>')


def error_page(status: int, message: str, user: Optional[str], csrf: Optional[str]) -> str:
    return layout(f"Error {status}", '<p><a href="javascript:history.back()">back</a></p>',
                  user, csrf, error=message)


def history_table(recs: List[tuple]) -> str:
    """Rows ``(path, HistoryRecord)`` newest first."""
    rows = [(esc(format_ns(r.tsns)), f"<b>{esc(r.user)}</b>@{esc(r.host)}", esc(p or "/"),
             esc(r.action), esc(r.record)) for p, r in reversed(recs)]
    return table(("time", "who", "object", "action", "record"), rows, cls="history")
