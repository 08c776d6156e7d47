"""Pictures: memory and time against context length, with the GPU's capacity as a line.

matplotlib is the optional ``plot`` extra and is imported only inside these functions, so no
other command ever loads it. Like :mod:`kvplan.report`, this module only renders numbers the
library computed; axis units are chosen here (GiB = 2^30 bytes, seconds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kvplan.errors import InvalidInput, RuntimeFailure

GIB = 1 << 30
_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise RuntimeFailure("plotting needs matplotlib: pip install 'kvplan[plot]'") from None
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def require_matplotlib() -> None:
    """Fail before any work is done when the plot extra is missing."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise RuntimeFailure("plotting needs matplotlib: pip install 'kvplan[plot]'")


def check_plot_path(path: Path, *, force: bool = False) -> Path:
    """Refuse a path matplotlib cannot write, or an existing file without ``force``, before any work."""
    from kvplan.checks import check_output_path

    if path.suffix.lower() not in _SUFFIXES:
        raise InvalidInput(f"invalid plot file {str(path)!r}; expected a name ending in {', '.join(_SUFFIXES)}")
    check_output_path(path, force=force)
    require_matplotlib()
    return path


def plot_context(
    path: Path,
    *,
    title: str,
    contexts: list[int],
    memory: dict[str, list[int]],
    capacity_bytes: int | None = None,
    capacity_label: str = "GPU memory",
    times: dict[str, list[float]] | None = None,
) -> Path:
    """Memory series (bytes) and optional time series (seconds) against context length (tokens)."""
    plt = _pyplot()
    panels = 2 if times else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.4 * panels, 4.4), squeeze=False)
    ax = axes[0][0]
    for label, values in memory.items():
        ax.plot(contexts, [v / GIB for v in values], marker="o", label=label)
    if capacity_bytes is not None:
        label = f"{capacity_label} ({capacity_bytes / GIB:.1f} GiB)"
        ax.axhline(capacity_bytes / GIB, color="red", linestyle="--", label=label)
    _style(ax, "memory per GPU (GiB)")
    if times:
        tax = axes[0][1]
        for label, values in times.items():
            tax.plot(contexts, values, marker="o", label=label)
        tax.set_yscale("log")
        _style(tax, "time (s)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except OSError as exc:
        raise InvalidInput(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return path


def _style(ax: Any, ylabel: str) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
