"""``dcs plot`` and ``dcs timeline``: pictures of constants (needs ``pscalib[plot]``)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import click

from ..errors import InvalidInputError
from ..ndarrio import write_file_atomic
from ..plot import arrays, limits, output, timeline  # matplotlib only on the first drawing
from .app import cli
from .common import TimeParam, open_store

__all__ = ["plot_cmd", "timeline_cmd"]


def _plot():
    return arrays, output, timeline


@cli.command("plot")
@click.argument("store")
@click.argument("ctype")
@click.option("-t", "--time", "tsp", type=TimeParam(), required=True,
              help="Time at which the constants are valid.")
@click.option("--version", "vers", type=int, default=None,
              help="Version of that range (default: the range's default version).")
@click.option("--diff-version", type=int, default=None, metavar="M",
              help="Draw the difference v(M) - v(N) of two versions of that range instead.")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), required=True,
              help="Picture file: .png, .svg or .pdf.")
@click.option("--layout", type=click.Choice(["auto", "mosaic", "geometry"]), default="auto",
              show_default=True,
              help="auto: assembled by the store's geometry when it fits, else a mosaic.")
@click.option("--frame", type=click.Choice(["psana", "lab"]), default="psana",
              show_default=True, help="Frame of assembled images.")
@click.option("--percentiles", default="1,99", show_default=True,
              help="Colour limits from these percentiles of the finite values.")
@click.option("--raw", is_flag=True,
              help="PNG with one pixel per image bin, no axes (pixel-exact).")
def plot_cmd(store: str, ctype: str, tsp, vers: Optional[int], diff_version: Optional[int],
             out: str, layout: str, frame: str, percentiles: str, raw: bool) -> None:
    """Draw the constants of CTYPE valid at a time into a picture.

    2-D arrays are drawn as an image, 3-D/4-D as a mosaic of segments sharing one colour
    scale, or as the detector image placed by the store's geometry constants; with a
    histogram and robust (percentile) colour limits. Geometry text is drawn as its segment
    layout.

    \b
    Example:
      dcs plot epix10ka-0001 pedestals -t 2024-01-20 -o peds.png
      dcs plot epix10ka-0001 pedestals -t 2024-01-20 --version 1 --diff-version 2 -o d.png
    """
    arrays, output, _ = _plot()
    pct = limits.parse_percentiles(percentiles)
    with open_store(store) as cs:
        geo = arrays.geometry_for(cs, tsp) if ctype != "geometry" else None
        if diff_version is not None:
            va = cs.version_at(ctype, tsp, vers)
            vb = va.rangeobj().versobj(diff_version)
            a, b = va.calib(), vb.calib()
            labels = (f"v{va.version()}", f"v{vb.version()}")
            if raw:
                fig_bytes = _raw_diff(output, a, b, geo, layout, frame, pct)
            else:
                fig = arrays.plot_diff(a, b, labels, geo, layout, pct, frame=frame)
        elif raw:
            data = cs.get(ctype, tsp, vers)
            if isinstance(data, str):
                raise InvalidInputError(f"{ctype} is text; --raw draws arrays only")
            fig_bytes = output.raw_image(data, geo, layout, frame, pct)
        else:
            fig = arrays.plot_constants(cs, ctype, tsp, vers, layout, percentiles=pct,
                                        frame=frame)
    if raw:
        if Path(out).suffix.lower() not in (".png", ""):
            raise InvalidInputError("--raw writes PNG; name the output *.png")
        def write(fh) -> None:
            fh.write(fig_bytes)
        write_file_atomic(out, write)
    else:
        output.save_figure(fig, out)
    click.echo(f"wrote {out}")


def _raw_diff(output, a, b, geo, layout: str, frame: str, pct: Tuple[float, float]) -> bytes:
    import numpy as np
    if isinstance(a, str) or isinstance(b, str):
        raise InvalidInputError("--raw draws arrays only; omit it for a text difference")
    if np.shape(a) != np.shape(b):
        raise InvalidInputError(f"cannot subtract arrays of shapes {np.shape(a)} and "
                                f"{np.shape(b)}")
    diff = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    return output.raw_image(diff, geo, layout, frame, pct, cmap="RdBu_r", symmetric=True)


@cli.command("timeline")
@click.argument("store")
@click.option("--ctype", "ctypes", multiple=True, help="Only this ctype (repeatable).")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), required=True,
              help="Picture file: .png, .svg or .pdf.")
def timeline_cmd(store: str, ctypes: Tuple[str, ...], out: str) -> None:
    """Draw every validity range of STORE as a bar over time.

    Labels list each range's versions with the default in brackets (and states and tags
    where the store has them); open ranges end in an arrow.

    \b
    Example:
      dcs timeline epix10ka-0001 -o timeline.png
      dcs timeline jungfrau-0001 --ctype geometry -o geo-timeline.svg
    """
    _, output, timeline = _plot()
    with open_store(store) as cs:
        fig = timeline.plot_timeline(cs, ctypes or None)
    output.save_figure(fig, out)
    click.echo(f"wrote {out}")
