"""Helpers for the web GUI tests: a demo calib directory with a GUI configuration, and
plain HTTP requests (http.client, no redirects followed, cookies by hand)."""
from __future__ import annotations

import html
import http.client
import re
import urllib.parse
import uuid
from pathlib import Path
from typing import Dict, Optional, Tuple

from test_cli import dcs, ok

PASSWORDS = {"alice": "alice-secret-1", "eve": "eve-secret-22"}


def gui_config(root: Path, writes: bool = True, kind: str = "repository",
               extra: str = "") -> Path:
    """users.txt (alice, eve; written by the real 'dcs web-user') and gui.ini: alice may
    change the repository, eve may log in but is not on the access list."""
    users = root / "users.txt"
    for name, pw in PASSWORDS.items():
        ok(dcs("web-user", users, name, "--password-stdin", input=pw + "\n"))
    cfg = root / "gui.ini"
    cfg.write_text(f"[gui]\nwrites = {'true' if writes else 'false'}\n"
                   f"auth = password, token\nusers_file = users.txt\nmax_upload_mb = 4\n"
                   f"{extra}\n[acl]\nkind = {kind}\nusers = alice\ngroup = ps-exp\n"
                   f"[groups]\nps-exp = alice\n")
    return cfg


def request(base: str, method: str, path: str, body: bytes = b"",
            headers: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, str], bytes]:
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def post_form(base: str, path: str, fields: Dict[str, str], cookie: Optional[str] = None,
              headers: Optional[Dict[str, str]] = None):
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    if cookie:
        h["Cookie"] = cookie
    h.update(headers or {})
    return request(base, "POST", path, urllib.parse.urlencode(fields).encode(), h)


def multipart(fields: Dict[str, str], files: Dict[str, Tuple[str, bytes]]) -> Tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'
                     f'{v}\r\n'.encode())
    for k, (fname, data) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; '
                     f'filename="{fname}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                     .encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def login(base: str, user: str) -> Tuple[str, str]:
    """(cookie header, CSRF token) of a password login."""
    st, h, _ = post_form(base, "/gui/login", {"user": user, "password": PASSWORDS[user]})
    assert st == 303, (st, h)
    cookie = h["set-cookie"].split(";", 1)[0]
    st, _, body = request(base, "GET", "/gui/", headers={"Cookie": cookie})
    m = re.search(rb'name="csrf" value="([^"]+)"', body)
    assert st == 200 and m, body[:500]
    return cookie, m.group(1).decode()


def error_text(body: bytes) -> str:
    m = re.search(rb'<p class="error" id="error">(.*?)</p>', body, re.S)
    return html.unescape(m.group(1).decode()) if m else ""
