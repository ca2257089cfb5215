#!/usr/bin/env python3
"""Print the module-level import graph of pscalib as layers, and fail on a cycle.

Only imports executed when a module is loaded count (``if TYPE_CHECKING:`` blocks and
imports inside functions are ignored); importing ``pkg.mod`` also runs ``pkg/__init__``.
Usage: ``python3 scripts/import_layers.py [--quiet]``; exit status 1 if there is a cycle.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parent.parent


def modules() -> Dict[str, Path]:
    out = {}
    for p in sorted((ROOT / "pscalib").rglob("*.py")):
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
        out[name[:-len(".__init__")] if name.endswith(".__init__") else name] = p
    return out


def graph(mods: Dict[str, Path]) -> Dict[str, Set[str]]:
    deps: Dict[str, Set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        pkg = m if path.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(pkg.split(".")[:len(pkg.split(".")) - node.level + 1])
                    name = base + ("." + node.module if node.module else "")
                else:
                    name = node.module or ""
                if not name.startswith("pscalib"):
                    continue
                subs = [f"{name}.{a.name}" for a in node.names if f"{name}.{a.name}" in mods]
                targets = subs if len(subs) == len(node.names) else subs + [name]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name in mods]
            else:
                continue
            for t in targets:
                parts = t.split(".")
                for i in range(2, len(parts) + 1):  # parent packages run first
                    dep = ".".join(parts[:i])
                    if dep in mods and dep != m and not m.startswith(dep + "."):
                        deps[m].add(dep)
    return deps


def layers(deps: Dict[str, Set[str]]) -> List[List[str]]:
    done: Set[str] = set()
    out: List[List[str]] = []
    left = set(deps)
    while left:
        level = sorted(m for m in left if deps[m] - {m} <= done)
        if not level:
            raise SystemExit("import cycle among: " + ", ".join(sorted(left)))
        out.append(level)
        done |= set(level)
        left -= set(level)
    return out


def main() -> None:
    result = layers(graph(modules()))
    if "--quiet" not in sys.argv:
        for i, level in enumerate(result):
            print(f"L{i}: {' '.join(m.replace('pscalib.', '') for m in level)}")


if __name__ == "__main__":
    main()
