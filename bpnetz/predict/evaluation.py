"""The reference points of prediction metrics: a position-independent baseline and an upper bound.

The baseline predicts every example with the average profile shape and the mean log count of reference loci:
the training split's peaks when the store holds them (at most :data:`BASELINE_MAX_LOCI`, evenly spaced in store
order), else the predicted set (slightly optimistic; ``metrics.json`` says which). The upper bound is binomial
thinning: one half of the observed counts predicts the other, a half-depth replicate.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from bpnetz.config import Split
from bpnetz.errors import notice
from bpnetz.memory import available_memory
from bpnetz.predict import metrics as M
from bpnetz.predict.inference import LocusPredictions, Window

#: at most this many training peaks (evenly spaced in store order) make the baseline's average profile.
BASELINE_MAX_LOCI = 20000
#: seed of the binomial thinning of the upper bound.
UPPER_BOUND_SEED = 0
#: float64 arrays the size of the observed counts the upper bound holds at once (its halves, smoothing, counts).
#: It runs on a thread beside the model's and the baseline's metrics (numpy releases the GIL: 1.13 -> 0.81 s for
#: 256 loci × 1,000 positions × 2 tracks on 2 cores) when those arrays take under a quarter of the available
#: memory, else after them (their memory would add up).
_UPPER_BOUND_ARRAYS = 8


def baseline_reference(reader: Any, split: Split | None, chroms_all: Sequence[str], kinds: Sequence[int],
                       window: Window, predicted: LocusPredictions) -> tuple[np.ndarray, str]:
    """Observed counts the baseline averages: the training split's loci in the store (at most
    :data:`BASELINE_MAX_LOCI`, evenly spaced), else the predicted set; and a sentence saying which."""
    if split is not None:
        train = set(split.train_chroms(chroms_all))
        loci = reader.loci
        rows = np.flatnonzero(loci["chrom"].isin(train).to_numpy() & np.isin(loci["kind"].to_numpy(), kinds))
        if len(rows):
            if len(rows) > BASELINE_MAX_LOCI:
                rows = rows[np.linspace(0, len(rows) - 1, BASELINE_MAX_LOCI).astype(np.int64)]
            signal = reader.read_rows(rows).signal
            lay = reader.layout
            observed = window.crop(signal[:, lay.max_jitter:lay.max_jitter + lay.output_len]).astype(np.float32)
            return observed, f"training split: {len(rows)} loci on {len(train)} training chromosomes"
        notice("the store holds no loci on the training chromosomes; the baseline averages the predicted set "
               "(slightly optimistic).")
    return predicted.observed, f"predicted set: {len(predicted.rows)} loci (no training split available)"


def evaluate(pred: LocusPredictions, reference_counts: np.ndarray, groups: M.TaskTracks,
             track_names: Sequence[str], group_names: Sequence[str]) -> dict[str, M.MetricsResult]:
    """Metrics of the model, the baseline and the upper bound, keyed "model", "baseline", "upper_bound"."""
    names = {"track_names": track_names, "task_names": group_names}
    bound = functools.partial(M.upper_bound, pred.observed, groups, seed=UPPER_BOUND_SEED, **names)
    beside = _UPPER_BOUND_ARRAYS * pred.observed.size * 8 < available_memory() // 4
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(bound) if beside else None
        base_probs, base_lc = M.baseline_predictions(reference_counts, groups, len(pred.rows))
        results = M.compare_predictions(pred.observed, {"model": (pred.probs, pred.logcounts),
                                                        "baseline": (base_probs, base_lc)}, task_tracks=groups,
                                        **names)
        results["upper_bound"] = running.result() if running else bound()
    return results
