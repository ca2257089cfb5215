"""A small but realistic demo calibration directory (``dcs demo``).

:func:`build_demo` writes two detector stores into a calib directory::

    <dir>/epix10ka/epix10ka-0001.h5    ePix10ka quad, arrays of shape (4, 352, 384)
    <dir>/jungfrau/jungfrau-0001.h5    Jungfrau 4M, arrays of shape (8, 512, 1024)

with what calibration experts meet every day:

* several ctypes: ``pedestals`` (float32), ``pixel_status`` (uint8), ``common_mode``
  (float64 parameters), ``geometry`` (the real psana geometry text shipped in
  ``pscalib/data``);
* overlapping ranges (pedestals of epix10ka: Jan 10 - Mar 1 and Feb 15 - open; in the
  overlap the later-beginning range wins) and open ranges;
* several versions with a default that is **not** the latest (pedestals v0002 was added
  with ``make_default=False``, "under review");
* dictpars at store, ctype and version level (run, experiment, gain mode, units ...);
* an alias ``mfx_epix`` for the epix10ka store.

Arrays come from a fixed random seed, so every demo directory holds the same constants
(about 11 MB on disk). Nothing outside ``<dir>`` is touched.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from .aliases import add_alias
from .errors import InvalidInputError, StoreExistsError
from .store import DCStore
from .timestamps import format_ns, to_ns

__all__ = ["build_demo", "DemoInfo", "geometry_text", "DEMO_STEPS", "read_back"]

PathLike = Union[str, Path]

_DATA = Path(__file__).resolve().parent / "data"

EPIX = "epix10ka-0001"
JUNGFRAU = "jungfrau-0001"
EPIX_SHAPE = (4, 352, 384)
JUNGFRAU_SHAPE = (8, 512, 1024)
ALIAS = "mfx_epix"

#: Steps :func:`build_demo` reports to its ``progress`` callback.
DEMO_STEPS = ("epix10ka pedestals", "epix10ka status, common mode, geometry",
              "jungfrau status, common mode, geometry", "alias")


@dataclass
class DemoInfo:
    """What :func:`build_demo` wrote.

    Attributes
    ----------
    root
        The calib directory.
    stores
        detname -> store file.
    alias
        The alias created (None when :mod:`pscalib.aliases` is not available).
    times
        Names of interesting times -> ISO text (used by the example commands).
    """
    root: Path
    stores: Dict[str, Path] = field(default_factory=dict)
    alias: Optional[str] = None
    times: Dict[str, str] = field(default_factory=dict)

    def nbytes(self) -> int:
        """Total size of the store files."""
        return sum(p.stat().st_size for p in self.stores.values())

    def example_commands(self) -> List[Tuple[str, str]]:
        """``(what it shows, shell command)`` pairs that query the demo."""
        epix = shlex.quote(str(self.stores[EPIX]))
        jf = shlex.quote(str(self.stores[JUNGFRAU]))
        root = shlex.quote(str(self.root))
        t = self.times
        out = [
            ("the whole tree of a store", f"dcs print {epix}"),
            ("one ctype as JSON", f"dcs print {epix} --ctype pedestals --json"),
            ("constants valid at a time (summary)",
             f"dcs get {epix} pedestals --time {t['jan']}"),
            ("in the overlap the later range wins",
             f"dcs get {epix} pedestals --time {t['overlap']}"),
            ("a non-default version, saved as .npy",
             f"dcs get {epix} pedestals --time {t['jan']} --version 2 -o peds_v2.npy"),
            ("as psana NDArrIO text",
             f"dcs get {epix} common_mode --time {t['jan']} -o cmode.data"),
            ("geometry text", f"dcs get {jf} geometry --time {t['now']} -o geometry.txt"),
            ("by detector name via the repository",
             f"PSCALIB_REPOSITORY={root} dcs print {JUNGFRAU}"),
            ("history of a ctype", f"dcs history {epix} pedestals"),
        ]
        if self.alias:
            out.append(("by alias", f"PSCALIB_REPOSITORY={root} dcs print {self.alias}"))
        return out


def geometry_text(name: str) -> str:
    """Text of a packaged geometry file: ``'epix10kaquad'`` or ``'jungfrau4M'``."""
    path = _DATA / f"geometry-def-{name}.data"
    if not path.is_file():
        raise InvalidInputError(f"packaged geometry {path.name} is missing from {_DATA}; "
                                f"reinstall pscalib")
    return path.read_text(encoding="utf-8")


def _pedestals(rng: np.random.Generator, shape, level: float) -> np.ndarray:
    # per-panel offsets plus pixel noise, like a dark run average
    panel = rng.normal(level, 40.0, size=(shape[0],) + (1,) * (len(shape) - 1))
    return (panel + rng.normal(0.0, 12.0, size=shape)).astype(np.float32)


def _status(rng: np.random.Generator, shape, bad_fraction: float) -> np.ndarray:
    st = np.zeros(shape, dtype=np.uint8)
    n = int(bad_fraction * st.size)
    flat = st.reshape(-1)
    flat[rng.choice(st.size, size=n, replace=False)] = rng.choice(
        np.array([1, 2, 4, 8], np.uint8), size=n)  # hot, cold, noisy, saturated bits
    st[..., 0] |= 16  # edge columns flagged
    return st


def _set_ip_z(geometry: str, z_um: int) -> str:
    """Geometry text with the Z0 (7th field) of the ``IP`` line replaced."""
    out = []
    for line in geometry.splitlines(keepends=True):
        if line.lstrip().startswith("IP"):
            line = re.sub(r"^(\s*(?:\S+\s+){6})\S+", lambda m: f"{m.group(1)}{z_um}", line)
        out.append(line)
    return "".join(out)


def _check_target(root: Path, targets: List[Path]) -> None:
    if root.exists() and not root.is_dir():
        raise InvalidInputError(f"{root} exists and is not a directory; give a new directory")
    taken = [p for p in targets if p.exists()]
    if taken:
        raise StoreExistsError(f"{taken[0]} already exists; give a new or empty directory "
                               f"for the demo")


def build_demo(directory: PathLike,
               progress: Optional[Callable[[str], None]] = None) -> DemoInfo:
    """Write the demo calib directory into ``directory`` (created if needed).

    Parameters
    ----------
    directory
        Target calib directory; must not already hold the demo's store files.
    progress
        Called with the name of each step of :data:`DEMO_STEPS` once it is done.

    Returns
    -------
    DemoInfo

    Raises
    ------
    StoreExistsError
        If a demo store file already exists there.
    """
    root = Path(directory).absolute()
    stores = {EPIX: root / "epix10ka" / f"{EPIX}.h5",
              JUNGFRAU: root / "jungfrau" / f"{JUNGFRAU}.h5"}
    _check_target(root, list(stores.values()) + [root / "epix10ka" / "aliases.txt"])
    step = progress or (lambda name: None)
    rng = np.random.default_rng(20240501)
    info = DemoInfo(root, stores, times={
        "jan": "2024-01-20T12:00:00Z", "overlap": "2024-02-20T12:00:00Z",
        "now": "2024-06-01T00:00:00Z"})

    with DCStore(stores[EPIX], mode="x") as cs, cs.transaction():
        cs.set_pars({"detector": "epix10kaquad", "hutch": "MFX", "segments": 4})
        peds1 = _pedestals(rng, EPIX_SHAPE, 1500.0)
        cs.add_constants("pedestals", peds1, "2024-01-10T00:00:00Z", "2024-03-01T00:00:00Z",
                         {"experiment": "mfxc00123", "run": 17, "nevents": 1000,
                          "gain_mode": "AUTO"}, "dark run 17", tsprod="2024-01-10T08:15:00Z")
        peds2 = (peds1 + rng.normal(0.0, 0.5, EPIX_SHAPE)).astype(np.float32)
        cs.add_constants("pedestals", peds2, "2024-01-10T00:00:00Z", "2024-03-01T00:00:00Z",
                         {"experiment": "mfxc00123", "run": 25, "nevents": 5000,
                          "gain_mode": "AUTO", "reviewed": False},
                         "dark run 25, under review: not the default", make_default=False,
                         tsprod="2024-01-22T10:00:00Z")
        cs.add_constants("pedestals", _pedestals(rng, EPIX_SHAPE, 1480.0),
                         "2024-02-15T00:00:00Z", None,
                         {"experiment": "mfxc00124", "run": 3, "nevents": 1000,
                          "gain_mode": "AUTO"}, "after cooling change",
                         tsprod="2024-02-15T09:30:00Z")
        cs["pedestals"].set_pars({"units": "ADU", "producer": "calibman"})
        step(DEMO_STEPS[0])
        cs.add_constants("pixel_status", _status(rng, EPIX_SHAPE, 0.002),
                         "2024-01-01T00:00:00Z", None,
                         {"bits": "1 hot, 2 cold, 4 noisy, 8 saturated, 16 edge"},
                         tsprod="2024-01-10T08:20:00Z")
        cs.add_constants("common_mode", np.array([1.0, 25.0, 25.0, 100.0]),
                         "2024-01-01T00:00:00Z", None, {"algorithm": "median per bank"},
                         tsprod="2024-01-02T00:00:00Z")
        cs.add_constants("geometry", geometry_text("epix10kaquad"), "2024-01-01T00:00:00Z",
                         None, {"source": "optical metrology 2020-11-20"},
                         tsprod="2024-01-02T00:00:00Z")
        step(DEMO_STEPS[1])

    geo = geometry_text("jungfrau4M")
    moved = _set_ip_z(geo, 90000)  # detector moved 10 mm closer in March
    with DCStore(stores[JUNGFRAU], mode="x") as cs, cs.transaction():
        cs.set_pars({"detector": "jungfrau4M", "hutch": "CXI", "segments": 8})
        cs.add_constants("pixel_status", _status(rng, JUNGFRAU_SHAPE, 0.001),
                         "2023-06-01T00:00:00Z", None, {"run": 5},
                         tsprod="2023-06-01T12:00:00Z")
        cs.add_constants("common_mode", np.array([7.0, 1.0, 10.0, 0.0]),
                         "2023-06-01T00:00:00Z", None, tsprod="2023-06-01T12:00:00Z")
        cs.add_constants("geometry", geo, "2023-06-01T00:00:00Z", "2024-03-01T00:00:00Z",
                         {"z_um": 100000}, tsprod="2023-06-01T12:00:00Z")
        cs.add_constants("geometry", moved, "2024-03-01T00:00:00Z", None,
                         {"z_um": 90000}, "detector moved 10 mm closer",
                         tsprod="2024-03-01T09:00:00Z")
        step(DEMO_STEPS[2])

    info.alias = _add_alias(root)
    step(DEMO_STEPS[3])
    return info


def _add_alias(root: Path) -> Optional[str]:
    """Create the demo alias."""
    add_alias(root, ALIAS, EPIX, "2024-01-01T00:00:00Z")
    return ALIAS


def read_back(info: DemoInfo) -> List[str]:
    """Read some constants of the demo back; one human-readable line each."""
    lines = []
    with DCStore(info.stores[EPIX]) as cs:
        for label in ("jan", "overlap"):
            t = info.times[label]
            ver = cs.version_at("pedestals", t)
            arr = np.asarray(ver.calib())
            lines.append(f"{EPIX} pedestals at {format_ns(to_ns(t))}: {arr.dtype} "
                         f"{arr.shape} mean {float(arr.mean()):.1f} from "
                         f"{ver.rangeobj().range()}/v{ver.version():04d}")
        v2 = np.asarray(cs.get("pedestals", info.times["jan"], 2))
        v1 = np.asarray(cs.pedestals(info.times["jan"]))
        lines.append(f"{EPIX} pedestals v0002 (not the default) differs from the default by "
                     f"{float(np.abs(v2 - v1).mean()):.2f} ADU on average")
    with DCStore(info.stores[JUNGFRAU]) as cs:
        for label in ("jan", "now"):
            t = info.times[label]
            geo = str(cs.geometry(t))
            ip = next((ln.split() for ln in geo.splitlines() if ln.strip().startswith("IP")),
                      None)
            lines.append(f"{JUNGFRAU} geometry at {format_ns(to_ns(t))}: "
                         f"{len(geo.splitlines())} lines, IP Z0 = {ip[6] if ip else '?'} um")
    return lines
