"""The architecture rules of docs/architecture.rst, checked on the source."""
import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "pscalib"

#: Modules that may use h5py objects: the format and backend layer.
H5PY_MODULES = {"store/backends.py", "store/native.py", "store/payindex.py",
                "store/nativecheck.py", "store/legacy.py", "store/legacy_fields.py",
                "store/history.py", "store/tombstones.py", "store/records.py", "store/payload.py",
                "store/values.py", "store/fastread.py", "store/compact.py", "store/heapcheck.py",
                "store/safety.py",
                # HDF5 I/O helpers of the native backend: files on Python file objects,
                # table rows through prebuilt memory types
                "store/h5fileobj.py", "store/rowio.py"}


def _sources():
    return {str(p.relative_to(PKG)): p.read_text() for p in PKG.rglob("*.py")}


def test_import_graph_has_layers_and_no_cycle():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "import_layers.py")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    layers = [line.split(":", 1)[1].split() for line in out.stdout.splitlines()]
    where = {m: i for i, names in enumerate(layers) for m in names}
    # files below formats below backends below the model below the tools
    assert where["txn.transaction"] < where["store.backend"] < where["store.native"]
    assert where["store.native"] < where["store.backends"] < where["store.transaction"]
    assert where["store.backend"] < where["store.writer"] < where["store.transaction"]
    assert where["store.writer"] < where["store.dcstore"] < where["exchange.merge"]
    assert where["aliases"] < where["paths"] < where["store.storefile"]


def test_no_function_level_imports_of_pscalib_modules():
    bad = []
    for name, text in _sources().items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, ast.ImportFrom) and (sub.level or "pscalib" in
                                                            (sub.module or "")):
                        bad.append(f"{name}:{sub.lineno}")
    assert bad == []


def test_h5py_only_in_backend_modules():
    users = {name for name, text in _sources().items()
             if re.search(r"^import h5py|^from h5py", text, re.M)}
    assert users <= H5PY_MODULES, users - H5PY_MODULES


def test_tools_use_public_interfaces_only():
    private = re.compile(r"\._(writer|ensure_ctype|add_version|default_in|tables|txn|backend)"
                         r"\b|native import h5path|store\.payindex|store import payindex")
    for part in ("exchange", "importers", "cli"):
        for p in (PKG / part).glob("*.py"):
            hits = private.findall(p.read_text())
            assert not hits, (p.name, hits)


def test_dcstore_class_body_is_small():
    tree = ast.parse((PKG / "store" / "dcstore.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DCStore")
    assert cls.end_lineno - cls.lineno < 260


def test_docs_build_without_warnings():
    """README.rst and docs/*.rst render with docutils, warnings counted as errors."""
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_docs.py")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith(", 0 problems")


def test_no_module_over_500_lines_without_a_reason():
    long = [name for name, text in _sources().items()
            if text.count("\n") > 500 and "longer than 500 lines because" not in text]
    assert long == []
