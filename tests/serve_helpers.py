"""Real ``dcs serve`` processes on 127.0.0.1 for tests (bounded waits, killed at the end)."""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

DCS = shutil.which("dcs") or str(Path(sys.executable).with_name("dcs"))
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Served:
    """A running ``dcs serve CALIB --port 0``; ``base`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, calib: Path, args: Sequence[str] = (), timeout: float = 30.0):
        self.calib = Path(calib)
        self._err = tempfile.TemporaryFile()  # a file, not a pipe: a chatty server never blocks
        self._stderr = ""
        self.proc = subprocess.Popen([DCS, "serve", str(calib), "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=self._err,
                                     env=dict(os.environ))
        line = _readline(self.proc, timeout)
        if "listening on http://" not in line:
            err = self.stop()
            raise RuntimeError(f"dcs serve did not start: {line!r} {err!r}")
        self.base = line.split("listening on ")[1].split("/api/v1")[0]
        self.port = int(self.base.rsplit(":", 1)[1])
        deadline = time.monotonic() + timeout
        while True:  # ready when the API answers
            try:
                if get(self, "/api/v1/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                err = self.stop()
                raise RuntimeError(f"dcs serve never became ready: {err!r}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM) -> str:
        """Stop the server (SIGTERM, SIGKILL after 10 s); returns its stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if not self._err.closed:
            self._err.seek(0)
            self._stderr = self._err.read().decode(errors="replace")
            self._err.close()
            self.proc.stdout.close()
        return self._stderr


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    r, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().decode(errors="replace") if r else ""


def get(srv, path: str, headers: Optional[Dict[str, str]] = None, method: str = "GET",
        timeout: float = 10.0) -> Tuple[int, Dict[str, str], bytes]:
    """(status, lower-case headers, body) of one request; HTTP errors are returned too."""
    base = srv if isinstance(srv, str) else srv.base
    req = urllib.request.Request(base + path, headers=headers or {}, method=method)
    try:
        with _OPENER.open(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def get_json(srv, path: str, **kw) -> Tuple[int, Dict[str, str], object]:
    st, h, body = get(srv, path, **kw)
    return st, h, (json.loads(body) if body else None)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_quietly(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
