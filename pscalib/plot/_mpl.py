"""matplotlib with the non-interactive Agg backend, or a one-line error naming the extra."""
from __future__ import annotations

from ..errors import MissingDependencyError

try:
    import matplotlib
    matplotlib.use("Agg", force=True)  # never open a window, work without a display
    import matplotlib.image  # noqa: F401  (imsave for raw images)
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        f"pictures need matplotlib ({exc}); install it with: pip install 'pscalib[plot]'"
    ) from None

__all__ = ["matplotlib", "Figure", "ListedColormap"]
