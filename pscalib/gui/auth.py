"""Who is asking and may they change this: password hashes, tokens, sessions, CSRF, ACL.

* **Users file** (``users_file``): one ``name:hash`` per line, ``#`` comments. Passwords are
  stored as ``scrypt$N$r$p$salt$hash`` (hashlib.scrypt, 16-byte random salt) or
  ``pbkdf2_sha256$iterations$salt$hash``; tokens as ``token_sha256$hex`` (a token is
  random and long, so a plain sha256 is enough). ``dcs web-user`` writes entries.
* **Sessions**: after a password login the browser holds a cookie
  ``user|expiry|nonce|HMAC-SHA256(secret)`` (HttpOnly, SameSite=Strict); nothing is kept on
  the server, a restart with a new random secret logs everybody out.
* **CSRF**: every form carries ``HMAC(secret, "csrf" + session)``; a POST without the
  matching token, or with an ``Origin`` of another site, is refused.
* **Tokens**: ``Authorization: Bearer <token>`` for scripts (no CSRF: no cookie involved).
* **remote_user**: the user name in ``user_header`` is believed only from the addresses in
  ``trusted_proxies`` (the front proxy that did the authentication).
* **ACL** (:func:`may_write`): repository -> the named users, experiment -> the members of
  the experiment's group, local -> every authenticated user.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

from ..errors import AccessDeniedError, InvalidInputError
from ..names import validate_parkey
from .settings import GuiSettings

__all__ = ["hash_password", "verify_password", "hash_token", "read_users", "set_user",
           "make_session", "session_user", "csrf_token", "check_csrf", "may_write",
           "require_writer", "SESSION_COOKIE", "SESSION_SECONDS"]

SESSION_COOKIE = "pscalib_session"
SESSION_SECONDS = 8 * 3600
_SCRYPT = (2**14, 8, 1)  # N, r, p: ~16 MiB and ~50 ms per check


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def hash_password(password: str, scheme: str = "scrypt") -> str:
    """A salted hash of ``password`` for the users file."""
    salt = secrets.token_bytes(16)
    if scheme == "scrypt":
        n, r, p = _SCRYPT
        h = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
        return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(h)}"
    if scheme == "pbkdf2_sha256":
        it = 600_000
        h = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, it)
        return f"pbkdf2_sha256${it}${_b64(salt)}${_b64(h)}"
    raise InvalidInputError(f"unknown password scheme {scheme!r}; use scrypt or pbkdf2_sha256")


def hash_token(token: str) -> str:
    return "token_sha256$" + hashlib.sha256(token.encode()).hexdigest()


def verify_password(password: str, stored: str) -> bool:
    """True if ``password`` matches the ``stored`` hash (constant-time compare)."""
    parts = stored.split("$")
    try:
        if parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = (int(x) for x in parts[1:4])
            if n > 2**20 or r > 32 or p > 16:  # a crafted file must not exhaust memory
                return False
            h = hashlib.scrypt(password.encode(), salt=_unb64(parts[4]), n=n, r=r, p=p,
                               dklen=len(_unb64(parts[5])), maxmem=2**31 - 1)
            return hmac.compare_digest(h, _unb64(parts[5]))
        if parts[0] == "pbkdf2_sha256" and len(parts) == 4 and int(parts[1]) <= 10**7:
            h = hashlib.pbkdf2_hmac("sha256", password.encode(), _unb64(parts[2]),
                                    int(parts[1]))
            return hmac.compare_digest(h, _unb64(parts[3]))
    except (ValueError, TypeError):
        return False
    return False


def read_users(path: Optional[Path]) -> Dict[str, str]:
    """``{name: stored hash}`` of the users file (missing file: no users)."""
    if path is None:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read users file {path}: {exc}") from None
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and ":" in line:
            name, _, stored = line.partition(":")
            out[name.strip()] = stored.strip()
    return out


def set_user(path: Path, name: str, stored: str) -> None:
    """Add or replace ``name`` in the users file (written atomically, mode 0600)."""
    validate_parkey(name)
    if ":" in name or any(c.isspace() for c in name):
        raise InvalidInputError(f"user name {name!r} must not contain ':' or spaces")
    lines = []
    if Path(path).exists():
        lines = [ln for ln in Path(path).read_text(encoding="utf-8").splitlines()
                 if ln.partition(":")[0].strip() != name]
    lines.append(f"{name}:{stored}")
    tmp = Path(path).with_name(f".{Path(path).name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def check_login(settings: GuiSettings, name: str, password: str) -> bool:
    stored = read_users(settings.users_file).get(name)
    if not stored or stored.startswith("token_"):
        return False
    return verify_password(password, stored)


def check_token(settings: GuiSettings, token: str) -> Optional[str]:
    """The user whose token this is, or None."""
    want = hash_token(token)
    for name, stored in read_users(settings.users_file).items():
        if stored.startswith("token_") and hmac.compare_digest(stored, want):
            return name
    return None


def _sign(settings: GuiSettings, msg: str) -> str:
    return _b64(hmac.new(settings.secret, msg.encode(), hashlib.sha256).digest())


def make_session(settings: GuiSettings, user: str, now: Optional[float] = None) -> str:
    """The session cookie value for ``user``."""
    exp = int((now or time.time()) + SESSION_SECONDS)
    body = f"{_b64(user.encode())}|{exp}|{secrets.token_hex(8)}"
    return f"{body}|{_sign(settings, body)}"


def session_user(settings: GuiSettings, cookie: Optional[str]) -> Optional[str]:
    """The user of a valid, unexpired session cookie, else None."""
    if not cookie or cookie.count("|") != 3:
        return None
    body, _, sig = cookie.rpartition("|")
    if not hmac.compare_digest(sig, _sign(settings, body)):
        return None
    user_b64, exp, _ = body.split("|")
    try:
        if int(exp) < time.time():
            return None
        return _unb64(user_b64).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def csrf_token(settings: GuiSettings, basis: str) -> str:
    """The CSRF token of a session cookie (or, for proxy users, of the user name)."""
    return _sign(settings, "csrf|" + basis)[:32]


def check_csrf(settings: GuiSettings, basis: Optional[str], given: Optional[str]) -> None:
    if not basis or not given or not hmac.compare_digest(csrf_token(settings, basis), given):
        raise AccessDeniedError("the form's security token is missing or stale (CSRF check); "
                                "reload the page and submit again")


def may_write(settings: GuiSettings, user: Optional[str]) -> Tuple[bool, str]:
    """``(allowed, why)`` for changes by ``user`` to the served calib directory."""
    if not settings.writes:
        return False, ("the web GUI is read-only; start 'dcs serve' with --gui-config FILE "
                       "whose [gui] section sets writes = true")
    if not user:
        return False, "log in to change constants"
    kind = settings.acl_kind
    if kind == "local":
        return True, "local workspace: every authenticated user"
    if kind == "repository":
        if user in settings.acl_users:
            return True, "repository: named person"
        return False, (f"user {user!r} may not change the repository (allowed: "
                       f"{', '.join(sorted(settings.acl_users)) or 'nobody'})")
    members = settings.group_members(settings.acl_group or "")
    if user in members:
        return True, f"experiment workspace: member of {settings.acl_group}"
    return False, (f"user {user!r} is not in group {settings.acl_group!r} of this experiment "
                   f"workspace")


def require_writer(settings: GuiSettings, user: Optional[str]) -> str:
    ok, why = may_write(settings, user)
    if not ok:
        raise AccessDeniedError(why)
    return user  # type: ignore[return-value]
