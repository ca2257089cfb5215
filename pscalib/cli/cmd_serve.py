"""``dcs serve``: the read-only HTTP service over a calib directory (extra ``server``)."""
from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Optional

import click

from ..errors import InvalidInputError, MissingDependencyError
from ..service import SERVER_EXTRA_HINT
from .app import cli

__all__ = ["serve"]


try:  # the optional extra: everything else of dcs works without it
    import uvicorn
    from ..gui.app import gui_routes
    from ..gui.settings import load_settings
    from ..service.app import ServiceSettings, create_app
    _MISSING: Optional[str] = None
except ImportError as _exc:
    _MISSING = str(_exc)


def _web_stack():
    """(create_app, ServiceSettings, uvicorn), or MissingDependencyError naming the install."""
    if _MISSING is not None:
        raise MissingDependencyError(f"'dcs serve' needs the optional web stack ({_MISSING}); "
                                f"install it with: {SERVER_EXTRA_HINT}")
    return create_app, ServiceSettings, uvicorn


def _http_impl() -> str:
    """httptools (C parser, in the extra) when installed, else h11 (pure Python)."""
    try:
        import httptools  # noqa: F401  (only whether it is installed)
        return "httptools"
    except ImportError:
        return "h11"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only then;
    # without it Nagle + delayed ACK add ~40 ms to every keep-alive answer
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidInputError(f"cannot listen on {host}:{port} ({exc.strerror}); choose "
                                f"another --port or --host") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@cli.command("serve")
@click.argument("calib", type=click.Path(file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (use 0.0.0.0 only behind a firewall or a cache).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0: any free port; the one chosen is printed).")
@click.option("--max-age", default=10, show_default=True, type=click.IntRange(0, 86400),
              help="Seconds a cache in front may reuse a lookup answer.")
@click.option("--payload-cache-mb", default=256, show_default=True,
              type=click.IntRange(0, 1 << 20), help="Memory for encoded payloads.")
@click.option("--access-log", is_flag=True, help="Log every request to stderr.")
@click.option("--gui-config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Web GUI configuration (logins, ACL, writes; docs/gui.rst). Without it "
                   "the GUI under /gui is read-only.")
@click.option("--no-gui", is_flag=True, help="Serve only the API, no web GUI.")
def serve(calib: Path, host: str, port: int, max_age: int, payload_cache_mb: int,
          access_log: bool, gui_config: Path, no_gui: bool) -> None:
    """Serve the stores of CALIB read-only over HTTP (API under /api/v1, see docs/http.rst).

    Commits to the stores are visible to the next request; no restart is needed. The
    first line on stdout is 'dcs serve: listening on http://HOST:PORT/api/v1'.
    """
    create_app, ServiceSettings, uvicorn = _web_stack()
    extra = []
    if not no_gui:
        extra = gui_routes(load_settings(gui_config))
    app = create_app(calib, extra_routes=extra, settings=ServiceSettings(
        max_age=max_age, payload_cache_bytes=payload_cache_mb * 2**20))
    sock = _bind(host, port)
    real_host, real_port = sock.getsockname()[:2]
    shown = f"[{real_host}]" if ":" in real_host else real_host
    click.echo(f"dcs serve: listening on http://{shown}:{real_port}/api/v1 (serving {calib})")
    sys.stdout.flush()
    # no X-Forwarded-* rewriting (proxy_headers): the API builds no absolute URLs, and the
    # layer costs time on every request
    config = uvicorn.Config(app, log_level="warning", access_log=access_log, lifespan="on",
                            server_header=False, proxy_headers=False, http=_http_impl())
    uvicorn.Server(config).run(sockets=[sock])
