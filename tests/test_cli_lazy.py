"""The lazily loaded ``dcs`` command table matches what the command modules register, and a
plain ``dcs`` call does not import the web server or matplotlib."""
from __future__ import annotations

import subprocess
import sys

from pscalib.cli import app


def test_command_table_matches_the_modules():
    app.load_all_commands()
    registered = set(app.cli.commands)
    assert registered == set(app.COMMAND_MODULES), (
        f"update COMMAND_MODULES in pscalib/cli/app.py: missing "
        f"{sorted(registered - set(app.COMMAND_MODULES))}, stale "
        f"{sorted(set(app.COMMAND_MODULES) - registered)}")
    for name, module in app.COMMAND_MODULES.items():
        callback = app.cli.commands[name].callback
        assert callback is not None
        assert callback.__module__ == f"pscalib.cli.{module}", name


def test_help_lists_every_command():
    out = subprocess.run(["dcs", "--help"], capture_output=True, text=True, check=True).stdout
    for name in app.COMMAND_MODULES:
        assert f"  {name} " in out or f"  {name}\n" in out, name


def test_one_command_loads_only_its_module():
    code = ("import sys\n"
            "from pscalib.cli.main import main\n"
            "try:\n"
            "    main(['get', '--help'])\n"
            "except SystemExit as e:\n"
            "    assert e.code == 0, e.code\n"
            "heavy = [m for m in ('uvicorn', 'starlette', 'matplotlib', 'pscalib.cli.cmd_serve',"
            " 'pscalib.gui.app') if m in sys.modules]\n"
            "print('heavy=' + ','.join(heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "heavy=", out
