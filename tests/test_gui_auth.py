"""GUI authentication pieces: password hashes, tokens, sessions, CSRF, ACL, config file."""
from __future__ import annotations

import os
import stat
import time

import pytest

from pscalib.errors import AccessDeniedError, InvalidInputError
from pscalib.gui import auth
from pscalib.gui.settings import GuiSettings, load_settings


def test_password_hashes_are_salted_and_verified():
    for scheme in ("scrypt", "pbkdf2_sha256"):
        h1, h2 = auth.hash_password("s3cret!", scheme), auth.hash_password("s3cret!", scheme)
        assert h1 != h2 and h1.startswith(scheme + "$")  # a fresh salt each time
        assert auth.verify_password("s3cret!", h1) and auth.verify_password("s3cret!", h2)
        assert not auth.verify_password("s3cret?", h1)
    assert not auth.verify_password("x", "scrypt$1048577$8$1$AA$AA")  # refuses huge costs
    assert not auth.verify_password("x", "md5$abc")
    assert not auth.verify_password("x", "scrypt$x$y")
    with pytest.raises(InvalidInputError):
        auth.hash_password("x", "md5")


def test_users_file_and_tokens(tmp_path):
    users = tmp_path / "users.txt"
    auth.set_user(users, "alice", auth.hash_password("pw-alice-1"))
    auth.set_user(users, "bot", auth.hash_token("tok-123"))
    auth.set_user(users, "alice", auth.hash_password("pw-alice-2"))  # replaced, not added
    assert stat.S_IMODE(os.stat(users).st_mode) == 0o600
    assert sorted(auth.read_users(users)) == ["alice", "bot"]
    s = GuiSettings(auth=("password", "token"), users_file=users)
    assert auth.check_login(s, "alice", "pw-alice-2")
    assert not auth.check_login(s, "alice", "pw-alice-1")
    assert not auth.check_login(s, "bot", "tok-123")  # a token is not a password
    assert auth.check_token(s, "tok-123") == "bot" and auth.check_token(s, "tok-12") is None
    with pytest.raises(InvalidInputError):
        auth.set_user(users, "a:b", "x")


def test_sessions_and_csrf():
    s = GuiSettings()
    c = auth.make_session(s, "alice")
    assert auth.session_user(s, c) == "alice"
    body, _, sig = c.rpartition("|")
    forged = auth._b64(b"root") + body[body.index("|"):]
    assert auth.session_user(s, f"{forged}|{sig}") is None  # signature covers the user
    assert auth.session_user(GuiSettings(), c) is None  # another server secret
    assert auth.session_user(s, auth.make_session(s, "alice", now=time.time() - 9 * 3600)) \
        is None  # expired
    assert auth.session_user(s, "garbage") is None
    tok = auth.csrf_token(s, c)
    auth.check_csrf(s, c, tok)
    for bad in (None, "", tok[:-1] + ("A" if tok[-1] != "A" else "B")):
        with pytest.raises(AccessDeniedError, match="CSRF"):
            auth.check_csrf(s, c, bad)
    with pytest.raises(AccessDeniedError):
        auth.check_csrf(s, auth.make_session(s, "alice"), tok)  # token of another session


def test_acl_kinds():
    ro = GuiSettings()
    assert auth.may_write(ro, "alice")[0] is False and "read-only" in auth.may_write(ro, "a")[1]
    rep = GuiSettings(writes=True, acl_kind="repository", acl_users=frozenset({"alice"}))
    assert auth.may_write(rep, "alice")[0] and not auth.may_write(rep, "bob")[0]
    assert "log in" in auth.may_write(rep, None)[1]
    exp = GuiSettings(writes=True, acl_kind="experiment", acl_group="ps-x",
                      groups=(("ps-x", frozenset({"carol"})),))
    assert auth.may_write(exp, "carol")[0] and not auth.may_write(exp, "alice")[0]
    loc = GuiSettings(writes=True, acl_kind="local")
    assert auth.may_write(loc, "anyone")[0] and not auth.may_write(loc, None)[0]
    with pytest.raises(AccessDeniedError, match="may not change the repository"):
        auth.require_writer(rep, "bob")


def test_config_file(tmp_path):
    cfg = tmp_path / "gui.ini"
    cfg.write_text("[gui]\nwrites = true\nauth = password\nusers_file = u.txt\n"
                   "secret_file = gui.secret\n[acl]\nkind = repository\nusers = a, b\n")
    s = load_settings(cfg)
    assert s.writes and s.users_file == tmp_path / "u.txt" and s.acl_users == {"a", "b"}
    assert stat.S_IMODE(os.stat(tmp_path / "gui.secret").st_mode) == 0o600
    assert load_settings(cfg).secret == s.secret  # the same key after a restart
    assert load_settings(None).writes is False
    for text, word in [("[gui]\nwrites = maybe\n", "writes"),
                       ("[gui]\nauth = kerberos\n", "kerberos"),
                       ("[acl]\nkind = experiment\n", "group"),
                       ("[gui]\nwrites = true\nauth = password\n", "users_file"),
                       ("[gui]\nmax_upload_mb = 0\n", "max_upload_mb"),
                       ("not an ini file", "malformed")]:
        cfg.write_text(text)
        with pytest.raises(InvalidInputError, match=word):
            load_settings(cfg)
    with pytest.raises(InvalidInputError, match="cannot read"):
        load_settings(tmp_path / "missing.ini")
