"""The files of a peaks-mode prediction: the reference's h5 and metric files, ``metrics.json`` with the reference
points, the log-count scatter and the top-peak profiles (PNG), and the path template of predicted-count bigWigs.

The h5 coordinates are each locus' full output window, as the reference writes them; the pictures and bigWigs
cover the evaluated (cropped) windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bpnetz.predict import metrics as M
from bpnetz.predict.inference import LocusPredictions, Window
from bpnetz.predict.outputs import write_metric_files, write_predictions_h5
from bpnetz.predict.plots import plot_logcounts_scatter, plot_top_profiles
from bpnetz.store.schema import StoreLayout

#: top peaks per task drawn in the profiles picture.
TOP_PEAKS = 3


def bigwig_template(out_dir: Path, model_name: str) -> str:
    """bigWig path template ``<out>/<model>_predictions_track_{i}.bw`` (braces in the name escaped)."""
    escaped = model_name.replace("{", "{{").replace("}", "}}")
    return str(out_dir / f"{escaped}_predictions_track_{{i}}.bw")


def write_peak_outputs(out_dir: Path, model_name: str, pred: LocusPredictions, results: dict[str, M.MetricsResult],
                       layout: StoreLayout, groups: M.TaskTracks, group_names: Sequence[str], window: Window,
                       settings: dict[str, Any]) -> list[Path]:
    """The reference's h5 and metric files, metrics.json with the reference points, and the two PNGs."""
    out_start = pred.summit - layout.output_len // 2
    track = results["model"].track
    files = [write_predictions_h5(out_dir / f"{model_name}_predictions.h5", pred.chrom, out_start,
                                  out_start + layout.output_len, pred.counts, track.pred_logcounts, pred.observed,
                                  track.true_logcounts)]
    files += write_metric_files(out_dir, results["model"],
                                {"baseline": results["baseline"], "upper_bound": results["upper_bound"]},
                                extra=settings)
    task = results["model"].task
    files.append(plot_logcounts_scatter(out_dir / f"{model_name}_logcounts.png", task.true_logcounts,
                                        task.pred_logcounts, group_names))
    start = out_start + window.offset
    labels = [f"{c}:{s}-{s + window.size}" for c, s in zip(pred.chrom, start, strict=True)]
    files.append(plot_top_profiles(out_dir / f"{model_name}_top_profiles.png", pred.observed, pred.counts, groups,
                                   [t.strand for t in layout.tracks], group_names, k=TOP_PEAKS, labels=labels))
    return files
