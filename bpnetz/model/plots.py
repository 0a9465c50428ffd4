"""Learning curves of a training run: loss, profile loss, counts loss (train vs validation) and learning rate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

#: panels: history key (validation is "val_" + key) and title
CURVES = (("loss", "total loss"), ("profile_loss", "profile loss (multinomial NLL)"),
          ("logcounts_loss", "counts loss"))


def plot_learning_curves(history: Mapping[str, Sequence[float]], path: str | Path, *,
                         best_epoch: int | None = None, title: str = "") -> Path:
    """Write a PNG with one panel per curve present in ``history`` (Keras names), epochs from 1.

    ``best_epoch`` (0-based) is marked on every panel: the epoch whose weights were kept.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = [(key, name) for key, name in CURVES if key in history]
    if "learning_rate" in history:
        panels.append(("learning_rate", "learning rate"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (key, name) in zip(axes[0], panels):
        epochs = range(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], marker="o", ms=3, label="train" if key != "learning_rate" else None)
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker="o", ms=3, label="validation")
        if best_epoch is not None:
            ax.axvline(best_epoch + 1, color="grey", ls="--", lw=1, label="kept")
        if key == "learning_rate":
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
