"""Pictures of prediction quality: observed vs predicted log counts, and profiles of the top peaks.

Figures are built with matplotlib's object API (no pyplot state, Agg canvas) and written atomically as PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from bpnetz.files.atomic import atomic_output
from bpnetz.predict.metrics import TaskTracks, counts_metrics

OBSERVED_COLOUR = "#4d4d4d"
PREDICTED_COLOUR = "#d6604d"


def save_png(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write a figure as PNG atomically."""
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return path


def logcounts_figure(true_logcounts: np.ndarray, pred_logcounts: np.ndarray, task_names: Sequence[str]) -> Figure:
    """One scatter per task of observed vs predicted log counts, the diagonal, and Pearson r in the title."""
    true_logcounts = np.asarray(true_logcounts, dtype=np.float64)
    pred_logcounts = np.asarray(pred_logcounts, dtype=np.float64)
    stats = counts_metrics(true_logcounts, pred_logcounts)
    n = len(task_names)
    fig = Figure(figsize=(4.2 * n, 4.2))
    for g, name in enumerate(task_names):
        ax = fig.add_subplot(1, n, g + 1)
        x, y = true_logcounts[:, g], pred_logcounts[:, g]
        ax.scatter(x, y, s=6, alpha=0.4, color=OBSERVED_COLOUR, linewidths=0)
        finite = np.isfinite(x) & np.isfinite(y)
        if finite.any():
            lo = min(x[finite].min(), y[finite].min())
            hi = max(x[finite].max(), y[finite].max())
            ax.plot([lo, hi], [lo, hi], color=PREDICTED_COLOUR, lw=1)
        ax.set_title(f"{name}: Pearson r = {stats['counts_pearson'][g]:.3f} (n = {int(finite.sum())})")
        ax.set_xlabel("observed log counts")
        ax.set_ylabel("predicted log counts")
    return fig


def plot_logcounts_scatter(path: str | Path, true_logcounts: np.ndarray, pred_logcounts: np.ndarray,
                           task_names: Sequence[str]) -> Path:
    """PNG of :func:`logcounts_figure`."""
    return save_png(logcounts_figure(true_logcounts, pred_logcounts, task_names), path)


def top_examples(true_counts: np.ndarray, tracks: Sequence[int], k: int) -> np.ndarray:
    """Indices of the ``k`` examples with the most observed counts over the given tracks, most first."""
    totals = np.asarray(true_counts)[:, :, list(tracks)].sum(axis=(1, 2))
    return np.argsort(-totals, kind="stable")[:k]


def top_profiles_figure(true_counts: np.ndarray, pred_counts: np.ndarray, task_tracks: TaskTracks,
                        strands: Sequence[str], task_names: Sequence[str], k: int = 3,
                        labels: Sequence[str] | None = None) -> Figure:
    """Observed and predicted profiles of the ``k`` examples with most counts, per task (one row per task).

    '+' and unstranded tracks are drawn upwards, '−' tracks downwards (negated). ``labels`` names the examples
    (e.g. "chr1:1000-2000"); by default their indices.
    """
    true_counts = np.asarray(true_counts, dtype=np.float64)
    pred_counts = np.asarray(pred_counts, dtype=np.float64)
    k = min(k, len(true_counts))
    fig = Figure(figsize=(3.6 * k, 2.6 * len(task_tracks)))
    positions = np.arange(true_counts.shape[1])
    for g, tracks in enumerate(task_tracks):
        for j, example in enumerate(top_examples(true_counts, tracks, k)):
            ax = fig.add_subplot(len(task_tracks), k, g * k + j + 1)
            for t in tracks:
                sign = -1.0 if strands[t] == "-" else 1.0
                ax.plot(positions, sign * true_counts[example, :, t], color=OBSERVED_COLOUR, lw=0.8,
                        label="observed" if t == tracks[0] else None)
                ax.plot(positions, sign * pred_counts[example, :, t], color=PREDICTED_COLOUR, lw=1.0,
                        label="predicted" if t == tracks[0] else None)
            ax.axhline(0, color="black", lw=0.4)
            label = labels[example] if labels is not None else f"example {example}"
            ax.set_title(f"{task_names[g]}: {label}", fontsize=9)
            if j == 0:
                ax.set_ylabel("counts (− strand below 0)")
                ax.legend(fontsize=7, frameon=False)
    return fig


def plot_top_profiles(path: str | Path, true_counts: np.ndarray, pred_counts: np.ndarray,
                      task_tracks: TaskTracks, strands: Sequence[str], task_names: Sequence[str], k: int = 3,
                      labels: Sequence[str] | None = None) -> Path:
    """PNG of :func:`top_profiles_figure`."""
    return save_png(top_profiles_figure(true_counts, pred_counts, task_tracks, strands, task_names, k, labels),
                    path)
