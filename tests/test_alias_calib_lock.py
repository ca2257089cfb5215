"""Issue 13, item 5 (and the symlinked alias file): one alias means one detector per calib
directory even when two processes add it to two dettypes' alias files at the same moment;
a symlinked aliases.txt stays a symlink."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

from pscalib.aliases import AliasFile, list_aliases, resolve_alias

ADD = textwrap.dedent("""
    import os, sys, time
    from pscalib.aliases import add_alias
    from pscalib.errors import AliasFileError
    start = float(sys.argv[4])
    while time.time() < start:  # both processes start the change at the same moment
        pass
    try:
        add_alias(sys.argv[1], sys.argv[2], sys.argv[3])
        print("added")
    except AliasFileError as exc:
        print("refused", exc)
""")


def test_concurrent_same_alias_in_two_dettypes(tmp_path):
    results = []
    for i in range(8):
        calib = tmp_path / f"calib{i}"
        alias = f"Det:{i}"
        start = time.time() + 1.5
        procs = [subprocess.Popen([sys.executable, "-c", ADD, str(calib), alias, det,
                                   str(start)], stdout=subprocess.PIPE, text=True)
                 for det in ("cspad-0001", "epix10ka-0001")]
        outs = [p.communicate(timeout=60)[0] for p in procs]
        added = sum(o.startswith("added") for o in outs)
        results.append(added)
        recs = [r for r in list_aliases(calib) if r.alias == alias]
        assert len(recs) == 1, (outs, recs)
        assert resolve_alias(alias, calib).detname == recs[0].detname
    assert results == [1] * 8, results


def test_symlinked_alias_file_stays_a_link(tmp_path):
    calib = tmp_path / "calib"
    (calib / "cspad").mkdir(parents=True)
    shared = tmp_path / "shared" / "cspad-aliases.txt"
    shared.parent.mkdir()
    shared.write_text("")
    link = calib / "cspad" / "aliases.txt"
    link.symlink_to(os.path.relpath(shared, link.parent))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSCALIB_")}
    r = subprocess.run(["dcs", "alias", "add", "Cxi:Cspad.0", "cspad-0001", "--calib",
                        str(calib)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert link.is_symlink()
    assert [x.alias for x in AliasFile.load(link).records] == ["Cxi:Cspad.0"]
    assert "Cxi:Cspad.0" in shared.read_text()  # written through the link
