"""Pictures of in-silico experiments: a variant's ref/alt profiles with contribution logos, and spacing curves.

matplotlib's object API (no pyplot state); PNGs written atomically by :func:`bpnetz.predict.plots.save_png`.
Profiles: + strand tracks up, − strand tracks drawn below the axis (as genome browsers show ChIP-nexus).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from bpnetz.genome.sequence import BASES
from bpnetz.predict.plots import save_png
from bpnetz.store.schema import StoreLayout

REF_COLOUR, ALT_COLOUR = "#4d4d4d", "#d6604d"
LOGO_FLANK = 20


def _logo(ax, matrix: np.ndarray, title: str) -> None:
    import logomaker
    import pandas as pd

    logomaker.Logo(pd.DataFrame(matrix, columns=list(BASES)), ax=ax)
    ax.set_title(title, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)


def plot_variant(path: Path, variant, effects, row: int, layout: StoreLayout,
                 logos: tuple[np.ndarray, np.ndarray] | None) -> Path:
    """Ref and alt predicted profiles of each task (offsets from the variant), and the ref/alt contribution logos
    ± LOGO_FLANK bp around it when given."""
    n_tasks = len(layout.tasks)
    fig = Figure(figsize=(10, 2.6 * n_tasks + (3.6 if logos is not None else 0)))
    rows = n_tasks + (2 if logos is not None else 0)
    x = np.arange(layout.output_len) - layout.output_len // 2
    for task, name in enumerate(layout.tasks):
        ax = fig.add_subplot(rows, 1, task + 1)
        for allele, counts, colour in (("ref", effects.ref_counts, REF_COLOUR), ("alt", effects.alt_counts,
                                                                                   ALT_COLOUR)):
            for t in layout.task_tracks(task):
                sign = -1.0 if layout.tracks[t].strand == "-" else 1.0
                ax.plot(x, sign * counts[row, :, t], color=colour, lw=0.9,
                        label=allele if t == layout.task_tracks(task)[0] else None)
        ax.axvline(0, color="#999999", lw=0.5, ls=":")
        ax.set_title(f"{variant.id} {variant.chrom}:{variant.pos} {variant.ref}>{variant.alt} — {name}: "
                     f"logFC {effects.logfc[row, task]:+.3f}, JSD {effects.jsd[row, task]:.3f}", fontsize=9)
        ax.set_ylabel("predicted counts")
        ax.legend(fontsize=7, frameon=False)
    if logos is not None:
        centre = layout.input_len // 2
        lo, hi = centre - LOGO_FLANK, centre + LOGO_FLANK + 1
        for k, (allele, scores) in enumerate(zip(("ref", "alt"), logos, strict=True)):
            _logo(fig.add_subplot(rows, 1, n_tasks + k + 1), scores[lo:hi],
                  f"{allele} allele: DeepLIFT-SHAP counts contributions, variant at {LOGO_FLANK}")
    fig.tight_layout()
    return save_png(fig, path)


def plot_spacing(path: Path, spacings: np.ndarray, curves: dict[str, np.ndarray], title: str,
                 ylabel: str) -> Path:
    """Mean effect vs spacing, one line per orientation, with its standard error as a band."""
    fig = Figure(figsize=(8, 3.6))
    ax = fig.add_subplot(111)
    for name, values in curves.items():
        mean, sem = values[:, 0], values[:, 1]
        ax.plot(spacings, mean, lw=1.2, label=name)
        ax.fill_between(spacings, mean - sem, mean + sem, alpha=0.25)
    ax.axhline(0, color="#999999", lw=0.5)
    ax.set_xlabel("spacing between motif centres (bp)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save_png(fig, path)


def plot_profiles(path: Path, background: np.ndarray, singles: dict, layout: StoreLayout, task: int) -> Path:
    """Mean predicted profile of the task over backgrounds, without and with each inserted motif (− strand down)."""
    fig = Figure(figsize=(9, 3.4))
    ax = fig.add_subplot(111)
    x = np.arange(layout.output_len) - layout.output_len // 2
    curves = {"background": background, **{name: mean for name, (_, mean) in singles.items()}}
    for k, (name, counts) in enumerate(curves.items()):
        colour = REF_COLOUR if k == 0 else f"C{k}"
        for j, t in enumerate(layout.task_tracks(task)):
            sign = -1.0 if layout.tracks[t].strand == "-" else 1.0
            ax.plot(x, sign * counts[:, t], color=colour, lw=1.0, label=name if j == 0 else None)
    ax.axhline(0, color="#999999", lw=0.5)
    ax.set_xlabel("position relative to the inserted motif's centre (bp)")
    ax.set_ylabel("mean predicted counts")
    ax.set_title(f"task {layout.tasks[task]}: marginal profile", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save_png(fig, path)
