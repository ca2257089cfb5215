"""matplotlib (non-interactive Agg backend), imported on the first drawing only.

Importing matplotlib takes about a second; the ``dcs`` command and the web GUI import
:mod:`pscalib.plot` at start-up, so nothing here imports it before a picture is drawn.
Without it, drawing raises one MissingDependencyError that names the extra.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from ..errors import MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from matplotlib.figure import Figure
else:
    Figure = Any

__all__ = ["mpl", "new_figure", "listed_colormap", "Figure"]


_MODULE: Any = None


def mpl() -> Any:
    """The matplotlib module, set to the Agg backend (never opens a window)."""
    global _MODULE
    if _MODULE is not None:
        return _MODULE
    try:
        import matplotlib
        matplotlib.use("Agg", force=True)
        import matplotlib.colors  # noqa: F401
        import matplotlib.figure  # noqa: F401
        import matplotlib.image  # noqa: F401  (imsave for raw images)
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError(
            f"pictures need matplotlib ({exc}); install it with: pip install 'pscalib[plot]'"
        ) from None
    _MODULE = matplotlib
    return matplotlib


def new_figure(**kw: Any) -> "Figure":
    """A pyplot-free ``matplotlib.figure.Figure`` (safe in servers and threads)."""
    return mpl().figure.Figure(**kw)


def listed_colormap(colors: Sequence[str]) -> Any:
    return mpl().colors.ListedColormap(list(colors))
