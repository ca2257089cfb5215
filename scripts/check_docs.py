#!/usr/bin/env python3
"""Build README.rst and docs/*.rst with docutils; any warning is an error.

The Python-domain roles of Sphinx (``:mod:``, ``:class:`` ...) that docstrings and a few
pages use are registered as plain literals, so the pages also render without Sphinx.
Usage: ``python3 scripts/check_docs.py [FILE.rst ...]``; exit status 1 on any problem.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import List

from docutils import nodes
from docutils.core import publish_string
from docutils.parsers.rst import roles

ROOT = Path(__file__).resolve().parent.parent
SPHINX_ROLES = ("mod", "class", "func", "meth", "attr", "data", "exc", "obj", "ref", "doc")


def _literal_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    return [nodes.literal(rawtext, text.lstrip("~"))], []


def check(path: Path) -> List[str]:
    """Problems docutils reports for one file (empty list: clean)."""
    errors = io.StringIO()
    try:
        publish_string(path.read_text(encoding="utf-8"), source_path=str(path),
                       writer_name="null",
                       settings_overrides={"halt_level": 5, "report_level": 2,
                                           "warning_stream": errors})
    except Exception as exc:  # a docutils crash is a problem of the page too
        return [f"{path}: {type(exc).__name__}: {exc}"]
    return [line for line in errors.getvalue().splitlines() if line.strip()]


def main(argv: List[str]) -> int:
    for name in SPHINX_ROLES:
        roles.register_local_role(name, _literal_role)
    docs = sorted((ROOT / "docs").rglob("*.rst"))  # docs/design/ too
    files = [Path(a) for a in argv] or [ROOT / "README.rst", *docs]
    problems = [p for f in files for p in check(f)]
    for p in problems:
        print(p)
    print(f"{len(files)} files, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
