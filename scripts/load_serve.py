#!/usr/bin/env python3
"""Load test of ``dcs serve`` on loopback, with nginx and Squid in front, against nginx
serving the same answers as static files (baseline measured in the same run).

N client processes each run OPS operations; one operation is a lookup
(``GET /api/v1/stores/cspad-0001/pedestals?t=...``) followed by a fetch of the payload
it names (4x4 float64 by default), over one keep-alive connection per client. "same":
every client asks for the same constants; "diff": client i walks the DISTINCT ranges.

Phases::

    nginx-static   the lookup answer and the .npy payload as static files (baseline)
    direct         dcs serve itself
    nginx-cache    nginx proxy_cache in front of dcs serve
    squid          Squid (reverse proxy, memory cache) in front of dcs serve

For every phase: operations/s, requests/s, p50/p99 latency of an operation, bytes
received, errors, and the requests that reached pscalib (``GET /api/v1/stats`` of the
server before and after). Bounded: OPS per client and --time-limit per phase; loopback
only; small defaults. nginx and squid come from Debian (apt-get install nginx squid).

Example::

    python3 scripts/load_serve.py --clients 4 --ops 500
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

DET = "cspad-0001"
T0 = np.datetime64("2024-01-01T00:00:00", "s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"load_serve: {what} exited with status {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"load_serve: {what} does not listen on port {port} after {timeout} s")


def stop(proc: Optional[subprocess.Popen]) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# ------------------------------------------------------------------ data
def range_time(i: int) -> str:
    return str(T0 + np.timedelta64(i * 86400 + 3600, "s"))


def make_calib(work: Path, distinct: int, shape) -> Path:
    from pscalib import DCStore
    calib = work / "calib"
    with DCStore(calib / "cspad" / f"{DET}.h5", mode="a") as cs, cs.transaction():
        for i in range(distinct):
            b = T0 + np.timedelta64(i * 86400, "s")
            e = b + np.timedelta64(86400, "s")
            cs.add_constants("pedestals", np.full(shape, float(i)), b, e)
    return calib


# ------------------------------------------------------------------ servers
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
{user}
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/ngx-body;
    proxy_temp_path {work}/ngx-proxy;
    fastcgi_temp_path {work}/ngx-fcgi;
    uwsgi_temp_path {work}/ngx-uwsgi;
    scgi_temp_path {work}/ngx-scgi;
    types {{ application/json json; application/octet-stream npy; }}
    keepalive_requests 100000;
    # baseline: the same answers as static files
    server {{
        listen 127.0.0.1:{static_port};
        root {work}/static;
        etag on;
    }}
    # the documented deployment: a shared cache in front of dcs serve (docs/http.rst)
    proxy_cache_path {work}/ngx-cache levels=1:2 keys_zone=pscalib:10m max_size=1g
                     inactive=1d use_temp_path=off;
    upstream pscalib {{ server 127.0.0.1:{app_port}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{cache_port};
        location /api/v1/ {{
            proxy_pass http://pscalib;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache pscalib;
            proxy_cache_lock on;             # one request upstream per missing answer
            proxy_cache_lock_timeout 30s;
            proxy_cache_revalidate on;       # If-None-Match upstream when an answer expires
            proxy_cache_use_stale error timeout updating http_502 http_503;
            proxy_cache_background_update on;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
        location = /api/v1/stats {{ proxy_pass http://pscalib; }}
    }}
}}
"""

SQUID_CONF = """
http_port 127.0.0.1:{squid_port} accel defaultsite=127.0.0.1:{app_port} vhost
cache_peer 127.0.0.1 parent {app_port} 0 no-query originserver no-digest name=pscalib
cache_peer_access pscalib allow all
http_access allow localhost
http_access deny all
cache_mem 64 MB
maximum_object_size_in_memory 64 MB
collapsed_forwarding on
pid_filename {work}/squid.pid
cache_log {work}/squid-cache.log
access_log none
coredump_dir {work}
shutdown_lifetime 1 seconds
visible_hostname pscalib-load
"""


def start_app(work: Path, calib: Path, port: int) -> subprocess.Popen:
    dcs = shutil.which("dcs") or str(Path(sys.executable).with_name("dcs"))
    log = open(work / "dcs-serve.log", "wb")
    proc = subprocess.Popen([dcs, "serve", str(calib), "--port", str(port), "--max-age", "60"],
                            stdout=log, stderr=subprocess.STDOUT)
    wait_port(port, proc, "dcs serve")
    return proc


def start_nginx(work: Path, nginx: str, ports: Dict[str, int]) -> subprocess.Popen:
    for d in ("ngx-body", "ngx-proxy", "ngx-fcgi", "ngx-uwsgi", "ngx-scgi", "ngx-cache"):
        (work / d).mkdir(exist_ok=True)
    user = "user root root;" if os.geteuid() == 0 else ""
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(work=work, user=user, static_port=ports["static"],
                                      app_port=ports["app"], cache_port=ports["cache"]))
    proc = subprocess.Popen([nginx, "-p", str(work), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=open(work / "nginx.out", "wb"))
    wait_port(ports["static"], proc, "nginx")
    wait_port(ports["cache"], proc, "nginx")
    return proc


def start_squid(work: Path, squid: str, ports: Dict[str, int]) -> subprocess.Popen:
    conf = work / "squid.conf"
    conf.write_text(SQUID_CONF.format(work=work, squid_port=ports["squid"],
                                      app_port=ports["app"]))
    os.chmod(work, 0o777)  # squid started as root runs as its own user and writes its logs here
    proc = subprocess.Popen([squid, "-N", "-f", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=open(work / "squid.out", "wb"))
    wait_port(ports["squid"], proc, "squid")
    return proc


# ------------------------------------------------------------------ clients
def _get(conn: http.client.HTTPConnection, path: str):
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.read()


def _client(args) -> Dict:
    port, paths, ops, deadline, mode, cid, distinct, static = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    lat: List[float] = []
    nbytes = reqs = errors = 0
    for k in range(ops):
        if time.time() > deadline:
            break
        i = 0 if mode == "same" else (cid * 7 + k) % distinct
        t0 = time.perf_counter()
        try:
            status, body = _get(conn, paths["lookup"][i])
            reqs, nbytes = reqs + 1, nbytes + len(body)
            if status == 200:
                url = paths["payload"][i] if static else json.loads(body)["payload_url"]
                status, body = _get(conn, url)
                reqs, nbytes = reqs + 1, nbytes + len(body)
            if status != 200:
                errors += 1
                continue
        except (OSError, http.client.HTTPException, ValueError):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        lat.append(time.perf_counter() - t0)
    conn.close()
    return {"lat": lat, "bytes": nbytes, "requests": reqs, "errors": errors}


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def _children(pid: int) -> List[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, ValueError, IndexError):
                continue
    return out


def cpu_seconds(pids: List[int]) -> float:
    """CPU time (user + system) of these processes and their children (nginx workers)."""
    every = set(pids)
    for p in pids:
        every.update(_children(p))
    return sum(_cpu_ticks(p) for p in every) / os.sysconf("SC_CLK_TCK")


def stats(app_port: int) -> Dict:
    c = http.client.HTTPConnection("127.0.0.1", app_port, timeout=10)
    c.request("GET", "/api/v1/stats")
    doc = json.loads(c.getresponse().read())
    c.close()
    return doc


def run_phase(name: str, port: int, paths: Dict, mode: str, a, app_port: int,
              static: bool = False, pids: Tuple[int, ...] = ()) -> Dict:
    """One timed phase; returns raw figures (see :func:`summarize`). ``pids``: the server
    processes whose CPU time is charged to this phase."""
    before = stats(app_port)
    cpu0 = cpu_seconds(list(pids))
    deadline = time.time() + a.time_limit
    jobs = [(port, paths, a.ops, deadline, mode, c, a.distinct, static) for c in range(a.clients)]
    t0 = time.perf_counter()
    with mp.get_context("fork").Pool(a.clients) as pool:
        res = pool.map(_client, jobs)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(list(pids)) - cpu0
    after = stats(app_port)
    delta = {k: after["by_route"].get(k, 0) - before["by_route"].get(k, 0)
             for k in ("lookup", "payloads")}
    return {"phase": name, "mode": mode, "wall_s": wall, "lat": [x for r in res for x in r["lat"]],
            "requests": sum(r["requests"] for r in res), "bytes": sum(r["bytes"] for r in res),
            "errors": sum(r["errors"] for r in res),
            "reached_pscalib": after["requests"] - before["requests"],
            "reached_lookups": delta["lookup"], "reached_payloads": delta["payloads"],
            "distinct_payloads": 1 if mode == "same" else a.distinct, "server_cpu_s": cpu}


def summarize(runs: List[Dict]) -> Dict:
    """Figures of one phase over its rounds (sums; latency percentiles of all operations)."""
    lat = sorted(x for r in runs for x in r["lat"])
    wall = sum(r["wall_s"] for r in runs)
    n = len(lat)
    out = {k: runs[0][k] for k in ("phase", "mode", "distinct_payloads")}
    for k in ("requests", "bytes", "errors", "reached_pscalib", "reached_lookups",
              "reached_payloads", "server_cpu_s"):
        out[k] = sum(r[k] for r in runs)
    out.update({"rounds": len(runs), "ops": n, "wall_s": wall,
                "ops_per_s": n / wall if wall else 0.0,
                "req_per_s": out["requests"] / wall if wall else 0.0,
                "p50_ms": 1e3 * lat[n // 2] if lat else None,
                "p99_ms": 1e3 * lat[min(n - 1, int(n * 0.99))] if lat else None,
                "server_cpu_us_per_req": (1e6 * out["server_cpu_s"] / out["requests"]
                                          if out["requests"] else None)})
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=4, help="concurrent client processes")
    ap.add_argument("--ops", type=int, default=200, help="lookup+fetch operations per client")
    ap.add_argument("--distinct", type=int, default=16, help="distinct constants ('diff')")
    ap.add_argument("--shape", default="4,4", help="payload shape (float64)")
    ap.add_argument("--time-limit", type=float, default=20.0, help="seconds per phase at most")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating rounds of nginx-static and direct (median ratio)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--no-squid", action="store_true", help="skip the Squid phase")
    a = ap.parse_args(argv)
    if not (1 <= a.clients <= 64 and 1 <= a.ops <= 100000 and 1 <= a.distinct <= 1000
            and 1 <= a.rounds <= 20):
        ap.error("--clients 1..64, --ops 1..100000, --distinct 1..1000, --rounds 1..20")
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                      else None)
    squid = shutil.which("squid") or ("/usr/sbin/squid" if os.path.exists("/usr/sbin/squid")
                                      else None)
    if nginx is None or (squid is None and not a.no_squid):
        raise SystemExit("load_serve: needs nginx and squid (apt-get install nginx squid)")
    shape = tuple(int(x) for x in a.shape.split(","))
    work = Path(tempfile.mkdtemp(prefix="pscalib-load-"))
    procs: List[subprocess.Popen] = []
    results: List[Dict] = []
    ratios: List[float] = []
    try:
        calib = make_calib(work, a.distinct, shape)
        ports = {k: free_port() for k in ("app", "static", "cache", "squid")}
        app = start_app(work, calib, ports["app"])
        procs.append(app)
        # the answers, fetched once, become nginx's static files (same bytes as served)
        paths = {"lookup": [f"/api/v1/stores/{DET}/pedestals?t={range_time(i)}"
                            for i in range(a.distinct)], "payload": []}
        static_paths = {"lookup": [], "payload": []}
        (work / "static").mkdir()
        c = http.client.HTTPConnection("127.0.0.1", ports["app"], timeout=30)
        for i, p in enumerate(paths["lookup"]):
            c.request("GET", p)
            body = c.getresponse().read()
            url = json.loads(body)["payload_url"]
            c.request("GET", url)
            payload = c.getresponse().read()
            (work / "static" / f"lookup{i}.json").write_bytes(body)
            (work / "static" / f"{url.rsplit('/', 1)[1]}.npy").write_bytes(payload)
            static_paths["lookup"].append(f"/lookup{i}.json")
            static_paths["payload"].append(f"/{url.rsplit('/', 1)[1]}.npy")
            paths["payload"].append(url)
        c.close()
        os.chmod(work, 0o755)
        ngx = start_nginx(work, nginx, ports)
        procs.append(ngx)
        if not a.no_squid:
            sq = start_squid(work, squid, ports)
            procs.append(sq)
        # baseline and direct service alternate, so that both see the same machine load
        static_runs, direct_runs, ratios = [], [], []
        for _ in range(a.rounds):
            static_runs.append(run_phase("nginx-static", ports["static"], static_paths, "same",
                                         a, ports["app"], static=True, pids=(ngx.pid,)))
            direct_runs.append(run_phase("direct", ports["app"], paths, "same", a,
                                         ports["app"], pids=(app.pid,)))
            ratios.append((direct_runs[-1]["requests"] / direct_runs[-1]["wall_s"]) /
                          (static_runs[-1]["requests"] / static_runs[-1]["wall_s"]))
        results += [summarize(static_runs), summarize(direct_runs)]
        results.append(summarize([run_phase("direct", ports["app"], paths, "diff", a,
                                            ports["app"], pids=(app.pid,))]))
        for mode in ("same", "diff"):
            results.append(summarize([run_phase("nginx-cache", ports["cache"], paths, mode, a,
                                                ports["app"], pids=(ngx.pid, app.pid))]))
        if not a.no_squid:
            for mode in ("same", "diff"):
                results.append(summarize([run_phase("squid", ports["squid"], paths, mode, a,
                                                    ports["app"], pids=(sq.pid, app.pid))]))
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(work, ignore_errors=True)
    ratios.sort()
    cpu = {r["phase"]: r["server_cpu_us_per_req"] for r in results if r["mode"] == "same"}
    summary = {"cpu_us_per_req": cpu, "clients": a.clients, "ops": a.ops,
               "distinct": a.distinct, "shape": shape,
               "rounds": a.rounds, "results": results, "ratios": ratios,
               "direct_vs_nginx_static": ratios[len(ratios) // 2],
               "cpus": os.cpu_count(), "loadavg": os.getloadavg()}
    if a.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"load_serve: {a.clients} clients x {a.ops} lookup+fetch, payload {shape} float64, "
          f"{a.distinct} distinct for 'diff', {os.cpu_count()} CPUs")
    print(f"{'phase':<13}{'mode':<6}{'ops':>6}{'ops/s':>9}{'req/s':>9}{'p50 ms':>8}"
          f"{'p99 ms':>8}{'bytes':>10}{'err':>5}{'->pscalib':>10}{'payloads':>9}{'distinct':>9}"
          f"{'cpu us/req':>11}")
    for r in results:
        print(f"{r['phase']:<13}{r['mode']:<6}{r['ops']:>6}{r['ops_per_s']:>9.0f}"
              f"{r['req_per_s']:>9.0f}{r['p50_ms'] or 0:>8.2f}{r['p99_ms'] or 0:>8.2f}"
              f"{r['bytes']:>10}{r['errors']:>5}{r['reached_pscalib']:>10}"
              f"{r['reached_payloads']:>9}{r['distinct_payloads']:>9}"
              f"{r['server_cpu_us_per_req'] or 0:>11.0f}")
    print(f"direct / nginx-static requests/s (same constants), median of {a.rounds} "
          f"alternating rounds: {summary['direct_vs_nginx_static']:.2f} "
          f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}); load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if cpu.get("nginx-static") and cpu.get("direct"):
        print(f"server CPU per request: dcs serve {cpu['direct']:.0f} us, nginx static "
              f"{cpu['nginx-static']:.0f} us (x{cpu['direct'] / cpu['nginx-static']:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
