"""Configuration of the web GUI: who may log in and change what (an INI file).

Without a configuration file the GUI is read-only. Example (``docs/gui.rst``)::

    [gui]
    writes = true                 ; false (the default): read-only
    auth = password, token        ; any of password, token, remote_user
    users_file = users.txt        ; 'dcs web-user' writes it (salted scrypt hashes)
    secret_file = gui.secret      ; signs sessions (created 0600 if missing); else random
    max_upload_mb = 64
    secure_cookies = false        ; true when served over HTTPS
    ; remote_user: a trusted front proxy authenticates and sends the user name
    trusted_proxies = 127.0.0.1
    user_header = X-Remote-User

    [acl]
    kind = experiment             ; repository | experiment | local
    users = alice, bob            ; repository: the named persons
    group = ps-cxic0415           ; experiment: members of this group

    [groups]
    ps-cxic0415 = carol, dave     ; else the system group database (getent group)

Relative paths are relative to the configuration file.
"""
from __future__ import annotations

import configparser
import grp
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import FrozenSet, Optional, Tuple

from ..errors import InvalidInputError

__all__ = ["GuiSettings", "load_settings", "AUTH_MODES", "ACL_KINDS"]

AUTH_MODES = ("password", "token", "remote_user")
ACL_KINDS = ("repository", "experiment", "local")


@dataclass(frozen=True)
class GuiSettings:
    """What :func:`load_settings` read (defaults: read-only, no logins)."""
    writes: bool = False
    auth: Tuple[str, ...] = ()
    users_file: Optional[Path] = None
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    max_upload_bytes: int = 64 * 2**20
    secure_cookies: bool = False
    trusted_proxies: FrozenSet[str] = frozenset()
    user_header: str = "X-Remote-User"
    acl_kind: str = "local"
    acl_users: FrozenSet[str] = frozenset()
    acl_group: Optional[str] = None
    groups: Tuple[Tuple[str, FrozenSet[str]], ...] = ()
    source: Optional[Path] = None

    def group_members(self, group: str) -> FrozenSet[str]:
        """Members of ``group``: the ``[groups]`` section, else the system database."""
        for name, members in self.groups:
            if name == group:
                return members
        try:
            return frozenset(grp.getgrnam(group).gr_mem)
        except KeyError:
            return frozenset()


def _names(text: str) -> FrozenSet[str]:
    return frozenset(n for n in text.replace(",", " ").split() if n)


def _secret(path: Path) -> bytes:
    """The session key in ``path`` (created with mode 0600 when missing)."""
    try:
        data = path.read_bytes().strip()
    except FileNotFoundError:
        data = secrets.token_hex(32).encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data + b"\n")
    except OSError as exc:
        raise InvalidInputError(f"cannot read the GUI secret file {path}: {exc.strerror}") from None
    if len(data) < 32:
        raise InvalidInputError(f"GUI secret file {path} holds fewer than 32 characters; "
                                f"delete it to have a new one made")
    return data


def load_settings(path: Optional[os.PathLike]) -> GuiSettings:
    """Read the GUI configuration file (None: read-only defaults).

    Raises
    ------
    InvalidInputError
        On a missing or malformed file or unknown values (the message names them).
    """
    if path is None:
        return GuiSettings()
    p = Path(path)
    cp = configparser.ConfigParser(inline_comment_prefixes=(";", "#"))
    try:
        with open(p, encoding="utf-8") as fh:
            cp.read_file(fh)
    except OSError as exc:
        raise InvalidInputError(f"cannot read GUI config {p}: {exc.strerror or exc}") from None
    except configparser.Error as exc:
        msg = " ".join(str(exc).split())
        raise InvalidInputError(f"GUI config {p} is malformed: {msg}") from None
    g = cp["gui"] if cp.has_section("gui") else {}
    a = cp["acl"] if cp.has_section("acl") else {}

    def rel(v: Optional[str]) -> Optional[Path]:
        return None if not v else (p.parent / v if not os.path.isabs(v) else Path(v))

    def typed(get, option: str, default, what: str):
        try:
            return get("gui", option, fallback=default)
        except ValueError:
            raise InvalidInputError(f"GUI config {p}: [gui] {option} = {g.get(option)!r} is "
                                    f"not {what}") from None
    writes = typed(cp.getboolean, "writes", False, "true or false")
    secure = typed(cp.getboolean, "secure_cookies", False, "true or false")
    max_mb = typed(cp.getfloat, "max_upload_mb", 64.0, "a number")
    auth = tuple(sorted(_names(g.get("auth", "password"))))
    bad = [m for m in auth if m not in AUTH_MODES]
    kind = a.get("kind", "local").strip()
    if bad:
        raise InvalidInputError(f"GUI config {p}: unknown auth mode(s) {', '.join(bad)}; use "
                                f"{', '.join(AUTH_MODES)}")
    if kind not in ACL_KINDS:
        raise InvalidInputError(f"GUI config {p}: [acl] kind {kind!r} must be one of "
                                f"{', '.join(ACL_KINDS)}")
    if kind == "experiment" and not a.get("group"):
        raise InvalidInputError(f"GUI config {p}: [acl] kind experiment needs group = NAME")
    users_file = rel(g.get("users_file"))
    if writes and ("password" in auth or "token" in auth) and users_file is None:
        raise InvalidInputError(f"GUI config {p}: auth {', '.join(auth)} needs users_file")
    if not 0 < max_mb <= 4096:
        raise InvalidInputError(f"GUI config {p}: max_upload_mb must be in (0, 4096]")
    secret_file = rel(g.get("secret_file"))
    groups = tuple((k, _names(v)) for k, v in cp.items("groups")) if cp.has_section(
        "groups") else ()
    return GuiSettings(
        writes=writes, auth=auth, users_file=users_file,
        secret=_secret(secret_file) if secret_file else secrets.token_bytes(32),
        max_upload_bytes=int(max_mb * 2**20), secure_cookies=secure,
        trusted_proxies=_names(g.get("trusted_proxies", "")),
        user_header=g.get("user_header", "X-Remote-User").strip(), acl_kind=kind,
        acl_users=_names(a.get("users", "")), acl_group=a.get("group") or None,
        groups=groups, source=p)
