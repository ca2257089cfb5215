"""Configuration precedence, calib-directory resolution and reporting, permissions."""
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from pscalib import DCStore
from pscalib.aliases import add_alias
from pscalib.config import ENV_VARS, load_config
from pscalib.errors import (AliasMismatchError, AliasNotFoundError, InvalidInputError,
                            InvalidNameError, StoreExistsError, StoreNotFoundError,
                            StorePermissionError)
from pscalib.paths import make_dirs, resolve_store, store_file_in


@pytest.fixture
def places(tmp_path, monkeypatch):
    """A repository and an experiment workspace configured through the environment."""
    repo = tmp_path / "repo"
    root = tmp_path / "exp"
    exp_calib = root / "CXI" / "cxic0415" / "calib"
    repo.mkdir()
    exp_calib.mkdir(parents=True)
    monkeypatch.setenv("PSCALIB_REPOSITORY", str(repo))
    monkeypatch.setenv("PSCALIB_EXPERIMENT_ROOT", str(root))
    monkeypatch.setenv("PSCALIB_EXPERIMENT", "cxic0415")
    return repo, exp_calib


def make_store(calib, detname, value):
    with DCStore(calib, detname, mode="a") as cs, cs.transaction():
        cs.add_constants("pedestals", np.full((2, 3), value, dtype=np.float32),
                         "2024-01-01T00:00:00")


def peds(cs):
    return float(cs.get("pedestals", "2024-06-01T00:00:00")[0, 0])


# ---------------------------------------------------------------- configuration
def test_precedence_arguments_over_env_over_defaults(monkeypatch, tmp_path):
    cfg = load_config()
    assert (cfg.repository, cfg.experiment, cfg.file_mode) == (None, None, None)
    assert cfg.search_order == ("experiment", "repository")
    assert cfg.sources["repository"] == "default"

    monkeypatch.setenv("PSCALIB_REPOSITORY", "/env/repo")
    monkeypatch.setenv("PSCALIB_SEARCH_ORDER", "repository,experiment")
    monkeypatch.setenv("PSCALIB_FILE_MODE", "0640")
    monkeypatch.setenv("PSCALIB_DIR_MODE", "2770")
    cfg = load_config()
    assert cfg.repository == Path("/env/repo")
    assert cfg.search_order == ("repository", "experiment")
    assert (cfg.file_mode, cfg.dir_mode) == (0o640, 0o2770)
    assert cfg.sources["repository"] == "env PSCALIB_REPOSITORY"

    cfg = load_config(repository=tmp_path, search_order="experiment", file_mode=0o600,
                      dir_mode="0700")
    assert cfg.repository == tmp_path
    assert cfg.search_order == ("experiment",)
    assert (cfg.file_mode, cfg.dir_mode) == (0o600, 0o700)
    assert cfg.sources["repository"] == "argument"
    # an explicit env mapping replaces os.environ
    assert load_config(env={}).repository is None


def test_experiment_forms(monkeypatch, tmp_path):
    cfg = load_config(experiment_root=tmp_path, experiment="cxic0415")
    assert (cfg.instrument, cfg.experiment) == ("CXI", "cxic0415")
    assert cfg.experiment_calib == tmp_path / "CXI" / "cxic0415" / "calib"
    assert load_config(experiment="MFX/mfxx1234").instrument == "MFX"
    monkeypatch.setenv("PSCALIB_INSTRUMENT", "xpp")
    assert load_config(experiment="ue0001").instrument == "XPP"
    assert load_config(experiment="ue0001").experiment_calib is None  # no root


@pytest.mark.parametrize("var, value, expect", [
    ("PSCALIB_FILE_MODE", "rw-r--r--", "PSCALIB_FILE_MODE='rw-r--r--' is not an octal"),
    ("PSCALIB_DIR_MODE", "99", "PSCALIB_DIR_MODE='99' is not an octal"),
    ("PSCALIB_SEARCH_ORDER", "experiment,local", "PSCALIB_SEARCH_ORDER="),
    ("PSCALIB_SEARCH_ORDER", "repository,repository", "distinct"),
    ("PSCALIB_EXPERIMENT", "CXI/../etc", "experiment '../etc'"),
    ("PSCALIB_EXPERIMENT", "../x", "instrument"),
])
def test_bad_env_values_name_the_variable(monkeypatch, var, value, expect):
    monkeypatch.setenv(var, value)
    with pytest.raises(InvalidInputError) as ei:
        load_config()
    assert expect in str(ei.value)


def test_every_env_var_is_documented():
    doc = (ROOT / "docs" / "paths.rst").read_text()
    for name in ENV_VARS:
        assert name in doc, name
    # every variable the package reads is listed (and so documented above); all reads go
    # through pscalib.config (env_value / load_config), click's envvar= aside
    files = {p: p.read_text() for p in (ROOT / "pscalib").rglob("*.py")}
    src = "".join(files.values())
    read = set(re.findall(r"(?:env_value\(|_pick\(|envvar=)[\"'](PSCALIB_[A-Z_]+)", src))
    assert {"PSCALIB_LOCK_TIMEOUT", "PSCALIB_USER", "PSCALIB_FILE_MODE"} <= read
    assert read - set(ENV_VARS) == set()
    direct = [p.name for p, text in files.items() if p.name != "config.py"
              and re.search(r"(?:environ|getenv)\b", text)]
    assert direct == []


# ---------------------------------------------------------------- resolution
def test_experiment_first_then_repository(places):
    repo, exp_calib = places
    make_store(repo, "cspad-0001", 1.0)
    with DCStore(None, "cspad-0001") as cs:
        assert cs.resolved.source == "repository"
        assert cs.path == repo / "cspad" / "cspad-0001.h5"
        assert peds(cs) == 1.0
        assert cs.resolved.searched == (exp_calib / "cspad" / "cspad-0001.h5",
                                        repo / "cspad" / "cspad-0001.h5")
    make_store(exp_calib, "cspad-0001", 2.0)
    with DCStore(None, "cspad-0001") as cs:
        assert cs.resolved.source == "experiment"
        assert cs.resolved.label == "experiment workspace CXI/cxic0415"
        assert peds(cs) == 2.0
    r = resolve_store(None, "cspad-0001", config=load_config(search_order="repository,experiment"))
    assert (r.source, r.path) == ("repository", repo / "cspad" / "cspad-0001.h5")


def test_order_from_env(places, monkeypatch):
    repo, exp_calib = places
    make_store(repo, "cspad-0001", 1.0)
    make_store(exp_calib, "cspad-0001", 2.0)
    monkeypatch.setenv("PSCALIB_SEARCH_ORDER", "repository,experiment")
    with DCStore(None, "cspad-0001") as cs:
        assert (cs.resolved.source, peds(cs)) == ("repository", 1.0)


def test_file_and_directory_paths(tmp_path):
    calib = tmp_path / "local"
    make_store(calib, "cspad-0002", 3.0)
    f = calib / "cspad" / "cspad-0002.h5"
    with DCStore(f) as cs:
        assert (cs.resolved.source, cs.path) == ("file", f)
    with DCStore(calib, "cspad-0002") as cs:
        assert cs.resolved.source == "local" and cs.path == f
    with pytest.raises(InvalidInputError, match="is a directory"):
        DCStore(calib)
    with pytest.raises(InvalidInputError, match="no calib directory configured"):
        DCStore(None, "cspad-0002")


def test_missing_file_names_every_place(places, monkeypatch):
    repo, exp_calib = places
    with pytest.raises(StoreNotFoundError) as ei:
        DCStore(None, "cspad-0009")
    msg = str(ei.value)
    assert "experiment workspace CXI/cxic0415" in msg and "repository" in msg
    assert str(exp_calib / "cspad" / "cspad-0009.h5") in msg
    assert str(repo / "cspad" / "cspad-0009.h5") in msg
    monkeypatch.delenv("PSCALIB_EXPERIMENT")
    with pytest.raises(StoreNotFoundError) as ei:
        DCStore(None, "cspad-0009")
    assert "not configured (set PSCALIB_EXPERIMENT)" in str(ei.value)


def test_alias_resolution_is_time_dependent(places):
    repo, exp_calib = places
    make_store(repo, "cspad-0001", 1.0)
    make_store(repo, "cspad-0002", 2.0)
    add_alias(repo, "CxiDs2.0:Cspad.0", "cspad-0001", end="2024-05-01")
    add_alias(repo, "CxiDs2.0:Cspad.0", "cspad-0002", begin="2024-05-01")
    with DCStore(None, "CxiDs2.0:Cspad.0", tsp="2024-04-30T23:59:59") as cs:
        assert cs.resolved.detname == "cspad-0001"
        assert float(cs.get("pedestals", "2024-04-30")[0, 0]) == 1.0
        # at a time the alias means the other detector, the store refuses to answer
        with pytest.raises(AliasMismatchError, match="means 'cspad-0002' at 2024-06-01"):
            peds(cs)
        assert cs.resolved.alias == "CxiDs2.0:Cspad.0"
        assert cs.resolved.alias_file == repo / "cspad" / "aliases.txt"
    with DCStore(None, "CxiDs2.0:Cspad.0", tsp="2024-05-01") as cs:
        assert cs.resolved.detname == "cspad-0002"
    with DCStore(None, "CxiDs2.0:Cspad.0") as cs:  # no time: latest record
        assert cs.resolved.detname == "cspad-0002"
    # an experiment alias file takes precedence over the repository's
    add_alias(exp_calib, "CxiDs2.0:Cspad.0", "cspad-0001")
    with DCStore(None, "CxiDs2.0:Cspad.0") as cs:
        assert cs.resolved.detname == "cspad-0001" and cs.resolved.source == "repository"
    with pytest.raises(AliasNotFoundError, match="no alias file defines it"):
        DCStore(None, "NoSuch:Det.0")
    with pytest.raises(InvalidNameError, match="neither a valid detector name"):
        DCStore(None, "../etc")


def test_write_without_path_uses_the_file_readers_see(places):
    repo, exp_calib = places
    make_store(repo, "cspad-0001", 1.0)
    with DCStore(None, "cspad-0001", mode="a") as cs:      # exists only in the repository
        assert cs.resolved.source == "repository"
    with DCStore(None, "cspad-0003", mode="a") as cs:      # new: first place in the order
        assert cs.path == exp_calib / "cspad" / "cspad-0003.h5"
    assert (exp_calib / "cspad" / "cspad-0003.h5").is_file()
    with pytest.raises(StoreExistsError, match="repository"):
        DCStore(None, "cspad-0001", mode="x")


# ---------------------------------------------------------------- permissions
def test_modes_of_new_files_and_dirs(places, monkeypatch):
    repo, exp_calib = places
    monkeypatch.setenv("PSCALIB_FILE_MODE", "0664")
    monkeypatch.setenv("PSCALIB_DIR_MODE", "2775")
    old = os.umask(0o077)  # the configured modes win over a strict umask
    try:
        with DCStore(None, "epix10ka-0001", mode="a"):
            pass
        add_alias(exp_calib, "front", "epix10ka-0001")
        with DCStore(exp_calib / "deep" / "x", "cspad-0001", mode="a", file_mode=0o600):
            pass
    finally:
        os.umask(old)
    d = exp_calib / "epix10ka"
    assert stat.S_IMODE(d.stat().st_mode) == 0o2775
    assert stat.S_IMODE((d / "epix10ka-0001.h5").stat().st_mode) == 0o664
    assert stat.S_IMODE((d / "aliases.txt").stat().st_mode) == 0o664
    for sub in ("deep", "deep/x", "deep/x/cspad"):
        assert stat.S_IMODE((exp_calib / sub).stat().st_mode) == 0o2775, sub
    f = exp_calib / "deep" / "x" / "cspad" / "cspad-0001.h5"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600  # argument beats PSCALIB_FILE_MODE
    make_dirs(exp_calib / "m", mode=0o750)
    assert stat.S_IMODE((exp_calib / "m").stat().st_mode) == 0o750


_DENIED_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import pscalib, pscalib.aliases, pscalib.paths, pscalib.config
    from pscalib import DCStore
    from pscalib.errors import StorePermissionError
    if os.geteuid() == 0:  # drop root (which ignores permission bits) after importing
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    out = {}
    for key, args in (("create", ("cspad-0005", "a")), ("read", ("cspad-0001", "r")),
                      ("alias", None)):
        try:
            if args is None:
                pscalib.aliases.add_alias(os.environ["EXP_CALIB"], "front", "cspad-0001")
            else:
                DCStore(None, args[0], mode=args[1]).close()
            out[key] = "no error"
        except StorePermissionError as exc:
            out[key] = str(exc)
    print(json.dumps(out))
""")


def test_permission_errors_name_workspace_and_path():
    """Run as an unprivileged user in a real chmod-ed workspace (root drops to nobody)."""
    if os.geteuid() == 0:
        try:
            import pwd
            pwd.getpwuid(65534)
        except KeyError:
            pytest.skip("running as root and there is no 'nobody' (uid 65534) to drop to")
    top = Path(tempfile.mkdtemp(prefix="pscalib-perm-", dir="/tmp"))
    try:
        os.chmod(top, 0o755)  # traversable by nobody
        exp_calib = top / "exp" / "CXI" / "cxic0415" / "calib"
        make_store(exp_calib, "cspad-0001", 1.0)
        for d in [top / "exp", *exp_calib.relative_to(top / "exp").parents, exp_calib]:
            p = top / "exp" / d if not Path(d).is_absolute() else d
            if p.is_dir():
                os.chmod(p, 0o755)
        os.chmod(exp_calib / "cspad", 0o755)  # workspace not writable for others
        os.chmod(exp_calib / "cspad" / "cspad-0001.h5", 0o600)  # nor the file readable
        env = {k: v for k, v in os.environ.items() if not k.startswith("PSCALIB_")}
        env.update(PSCALIB_EXPERIMENT_ROOT=str(top / "exp"), PSCALIB_EXPERIMENT="CXI/cxic0415",
                   EXP_CALIB=str(exp_calib), PYTHONPATH=str(ROOT))
        out = subprocess.run([sys.executable, "-c", _DENIED_SCRIPT], capture_output=True,
                             text=True, timeout=60, env=env, cwd=str(top))
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
        ws = "experiment workspace CXI/cxic0415"
        assert ws in res["create"] and str(exp_calib / "cspad" / "cspad-0005.h5") in res["create"]
        assert "group-writable" in res["create"]
        assert ws in res["read"] and str(exp_calib / "cspad" / "cspad-0001.h5") in res["read"]
        assert "read permission" in res["read"]
        assert ws in res["alias"] and str(exp_calib / "cspad") in res["alias"]
        assert not (exp_calib / "cspad" / "cspad-0005.h5").exists()
        assert not (exp_calib / "cspad" / "aliases.txt").exists()
    finally:
        shutil.rmtree(top)


def test_read_only_filesystem_is_a_permission_error(tmp_path, monkeypatch):
    """A read-only bind mount refuses even root; the error still names the workspace."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to make a read-only bind mount")
    src = tmp_path / "src" / "CXI" / "cxic0415" / "calib"
    make_store(src, "cspad-0001", 1.0)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "--bind", str(tmp_path / "src"), str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("bind mounts are not permitted here")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(mnt)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        monkeypatch.setenv("PSCALIB_EXPERIMENT_ROOT", str(mnt))
        monkeypatch.setenv("PSCALIB_EXPERIMENT", "cxic0415")
        with DCStore(None, "cspad-0001") as cs:  # reading works
            assert peds(cs) == 1.0
        with pytest.raises(StorePermissionError) as ei:
            DCStore(None, "cspad-0001", mode="a")
        assert "experiment workspace CXI/cxic0415" in str(ei.value)
        assert str(mnt / "CXI" / "cxic0415" / "calib" / "cspad" / "cspad-0001.h5") in str(ei.value)
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_store_file_in_layout(tmp_path):
    assert store_file_in(tmp_path, "epix10ka-0001-0002") == \
        tmp_path / "epix10ka" / "epix10ka-0001-0002.h5"


def test_creating_under_a_file_says_it_is_a_file(tmp_path):
    from pscalib import DCStore
    from pscalib.errors import InvalidInputError
    (tmp_path / "prof").write_text("not a directory")
    with pytest.raises(InvalidInputError, match="prof is a file, not a directory"):
        DCStore(tmp_path / "prof" / "cspad" / "cspad-0001.h5", mode="a")


def test_explicit_file_reads_no_configuration(tmp_path):
    """A bad PSCALIB_* setting does not stop reading or changing an existing, named file;
    it is reported when a file is created (in a real process, with the real environment)."""
    f = tmp_path / "cspad-0001.h5"
    with DCStore(f, mode="a") as cs:
        cs.add_constants("pedestals", np.ones(3), "2024-01-01")
    script = textwrap.dedent(f"""
        import numpy as np
        from pscalib import DCStore
        print(DCStore({str(f)!r}).get("pedestals", "2024-06-01").sum())
        with DCStore({str(f)!r}, mode="a") as cs:
            cs.add_constants("pedestals", np.full(3, 2.0), "2024-01-01")
        print(DCStore({str(f)!r}).get("pedestals", "2024-06-01").sum())
        try:
            DCStore({str(tmp_path / "cspad-0002.h5")!r}, mode="a")
        except Exception as exc:
            print(type(exc).__name__, exc)
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSCALIB_")}
    env.update(PSCALIB_FILE_MODE="banana", PSCALIB_SEARCH_ORDER="nowhere",
               PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:2] == ["3.0", "6.0"]
    assert lines[2].startswith("InvalidInputError PSCALIB_"), lines[2]
    assert not (tmp_path / "cspad-0002.h5").exists()
