"""The prediction pipeline behind ``bpnetz predict`` and ``bpnet-predict``: a trained model directory and a store
in; predictions, metrics, pictures and bigWigs out.

**Peaks** (default): the loci of one subset of the store — the model's split (``test``, ``val``, ``train``) read
from the model directory's ``splits.json``, every chromosome (``all``), or explicit chromosomes — are streamed
through the tf.data loader without jitter or shuffling, in store (genome) order, peaks only unless backgrounds
are asked for. Each batch is predicted (optionally averaged with its reverse complement, mapped back), and the
predictions are compared with the observed counts (:mod:`bpnetz.predict.metrics`) beside two reference points:
a position-independent baseline (the average profile of the training split's peaks when the store holds them,
else of the predicted set: ``metrics.json`` says which) and the binomial-thinning upper bound.

**Regions** (``regions=`` BED or ``tile=`` chromosomes): windows tiling the regions are read from the FASTA and
predicted; nothing is observed there, so only bigWigs of predicted counts are written. Bias inputs for those
windows are read from the control bigWigs named in the store layout, or are zero (with a notice).

Predicted counts = the joint softmax of each group's logits over the *full* output window × exp(its predicted
log count) (:func:`bpnetz.predict.metrics.joint_probabilities`), then centre-cropped to ``output_window_size``
(offset ``output_len // 2 − window // 2``, as the reference crops). Metrics see the cropped window: its
probabilities renormalised per group and the log count of the predicted counts inside it. The h5 coordinates are
each locus' full output window, as the reference writes them; bigWigs cover the cropped windows.

Model directory (written by ``bpnetz train``): ``model.keras``; ``splits.json`` (the fold, or folds keyed "0", …,
picked by the ``_splitNNN`` suffix); ``store.json`` (``path``, ``checksum``, ``layout`` of the training store).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from bpnetz.config import Split
from bpnetz.errors import InputError
from bpnetz.files.atomic import atomic_output, output_directory, relocated
from bpnetz.genome import sequence
from bpnetz.genome.bigwig import locus_segments, write_track_bigwigs
from bpnetz.genome.intervals import read_chrom_sizes
from bpnetz.model.contract import SPLITS_FILE, STORE_RECORD, ModelDir, ModelShape, TrackGroups, check_model_matches
from bpnetz.predict import metrics as M
from bpnetz.predict.outputs import write_metric_files, write_predictions_h5
from bpnetz.predict.plots import plot_logcounts_scatter, plot_top_profiles
from bpnetz.predict.regions import (
    Windows,
    chromosome_regions,
    read_regions_bed,
    read_sequences,
    tile_regions,
)
from bpnetz.predict.reverse_complement import rc_average
from bpnetz.store import schema
from bpnetz.store.schema import StoreLayout

SUBSETS = ("test", "val", "train", "all")
#: environment variable naming the directory of stores built from raw inputs (``--input-data …``).
STORE_CACHE_ENV = "BPNETZ_STORE_CACHE"
#: at most this many training peaks (evenly spaced in store order) make the baseline's average profile.
BASELINE_MAX_LOCI = 20000
#: windows read from the FASTA and bigWigs at once in regions mode.
REGION_CHUNK = 4096
#: top peaks per task drawn in the profiles picture.
TOP_PEAKS = 3
#: seed of the binomial thinning of the upper bound.
UPPER_BOUND_SEED = 0

PredictFn = Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]]


def notice(message: str) -> None:
    """A one-line notice on stderr (the pipeline continues)."""
    print(f"notice: {message}", file=sys.stderr)


# ------------------------------------------------------------------------------------------ the store


def default_store_cache(model_dir: ModelDir) -> Path:
    """Where stores built from raw inputs are kept: ``$BPNETZ_STORE_CACHE``; else the folder of the model's own
    training store when that is a cached ``store-<key>.zarr`` (so the same inputs find it again); else
    ``.bpnetz-stores`` beside the model directory."""
    if os.environ.get(STORE_CACHE_ENV):
        return Path(os.environ[STORE_CACHE_ENV])
    recorded = model_dir.recorded_store()
    if recorded is not None and recorded.name.startswith("store-") and recorded.parent.is_dir():
        return recorded.parent
    return model_dir.path.parent / ".bpnetz-stores"


def _recorded_build_args(model_dir: ModelDir) -> dict[str, Any]:
    """max_jitter, chroms and blacklist the training store was built with (so a rebuild hits the same cache)."""
    recorded = model_dir.recorded_store()
    if recorded is None or not recorded.exists():
        return {}
    try:
        build = schema.metadata(schema.open_group(recorded)).get("configs", {}).get("build", {})
    except InputError:
        return {}
    return {k: build[k] for k in ("max_jitter", "chroms", "blacklist") if build.get(k) is not None}


def resolve_store(model_dir: ModelDir, store: str | Path | None, *, input_data: str | Path | None,
                  reference_genome: str | Path | None, chrom_sizes: str | Path | None, input_len: int,
                  output_len: int, cache_dir: str | Path | None, progress: bool) -> Path:
    """The store to read: ``store``; else the cached store of raw inputs (built first when absent); else the
    model's training store named in ``store.json``."""
    if store is not None:
        return Path(store)
    if input_data is not None:
        missing = [flag for flag, value in (("--reference-genome", reference_genome),
                                            ("--chrom-sizes", chrom_sizes)) if value is None]
        if missing:
            raise InputError(f"--input-data needs {' and '.join(missing)} to build (or find) the store.",
                             fix="Pass them, or pass --store.")
        from bpnetz.build.builder import find_or_build_store

        build = {"max_jitter": 0, **_recorded_build_args(model_dir)}
        return find_or_build_store(cache_dir or default_store_cache(model_dir), input_data, reference_genome,
                                   chrom_sizes, input_len=input_len, output_len=output_len, progress=progress,
                                   **build)
    recorded = model_dir.recorded_store()
    if recorded is None:
        raise InputError(f"no store given and the model directory has no {STORE_RECORD} naming one.",
                         path=model_dir.path, fix="Pass --store, or --input-data, --reference-genome and "
                                                  "--chrom-sizes.")
    return recorded


# ------------------------------------------------------------------------------------------ model and store


def model_predict_fn(model: Any) -> PredictFn:
    """A function running the model (inference mode, one traced graph) on a dict of numpy inputs."""
    import tensorflow as tf

    names = list(model.input)

    @tf.function(reduce_retracing=True)
    def call(inputs: dict[str, Any]) -> dict[str, Any]:
        return model(inputs, training=False)

    def predict_fn(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = call({k: tf.convert_to_tensor(np.asarray(inputs[k], dtype=np.float32)) for k in names})
        return {k: np.asarray(v) for k, v in outputs.items()}

    return predict_fn


def predict_batch(predict_fn: PredictFn, inputs: Mapping[str, np.ndarray], layout: StoreLayout, *,
                  reverse_complement_average: bool, set_bias_as_zero: bool) -> tuple[np.ndarray, np.ndarray]:
    """Profile logits and log counts of one batch of model inputs."""
    inputs = {k: np.asarray(v) for k, v in inputs.items()}
    bias = {k: inputs[k] for k in ("profile_bias", "counts_bias") if k in inputs}
    if set_bias_as_zero:
        bias = {k: np.zeros_like(v) for k, v in bias.items()}
    if reverse_complement_average:
        out = rc_average(predict_fn, inputs["sequence"], bias, layout)
    else:
        out = predict_fn({"sequence": inputs["sequence"], **bias})
    return np.asarray(out["profile"]), np.asarray(out["logcounts"])


# ------------------------------------------------------------------------------------------ predictions


@dataclass(frozen=True)
class Window:
    """The centre crop of the output window that is evaluated and written."""

    output_len: int
    size: int

    @property
    def offset(self) -> int:
        return self.output_len // 2 - self.size // 2

    def crop(self, x: np.ndarray) -> np.ndarray:
        return x[:, self.offset:self.offset + self.size]


def window_of(output_len: int, output_window_size: int | None) -> Window:
    size = output_len if output_window_size is None else int(output_window_size)
    if not 0 < size <= output_len:
        raise InputError(f"--output-window-size {size} must be between 1 and the model's output length "
                         f"{output_len}.", fix=f"Use at most {output_len}.")
    return Window(output_len, size)


def window_predictions(logits: np.ndarray, logcounts: np.ndarray, groups: M.TaskTracks,
                       window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities inside the window, renormalised per group, and each group's log count inside it.

    The joint softmax runs over the full output window; the window's predicted counts are ``probs ×
    exp(logcounts)`` with the returned values (the full-window counts, cropped).
    """
    probs = window.crop(M.joint_probabilities(logits, groups))
    logcounts = np.array(logcounts, dtype=np.float64)
    for g, tracks in enumerate(groups):
        idx = list(tracks)
        mass = probs[:, :, idx].sum(axis=(1, 2))
        probs[:, :, idx] /= mass[:, None, None]
        logcounts[:, g] += np.log(mass)
    return probs, logcounts


@dataclass
class LocusPredictions:
    """Predictions of the evaluated loci, in store order, over the evaluated window."""

    rows: np.ndarray  # store rows
    chrom: np.ndarray
    summit: np.ndarray
    probs: np.ndarray  # (N, W, T) float32, summing to 1 per group
    logcounts: np.ndarray  # (N, G) log predicted counts inside the window
    observed: np.ndarray  # (N, W, T) float32 observed counts
    track_group: np.ndarray  # (T,) softmax group of each track

    @property
    def counts(self) -> np.ndarray:
        """Predicted counts (N, W, T) per track."""
        return self.probs * np.exp(self.logcounts[:, self.track_group])[:, None, :]


def predict_loci(stream: Any, predict_fn: PredictFn, groups: M.TaskTracks, window: Window, *,
                 reverse_complement_average: bool, set_bias_as_zero: bool, keep: np.ndarray | None,
                 progress: bool) -> LocusPredictions:
    """Run the model over every batch of an unshuffled, unjittered loader stream (only ``keep`` positions of it
    when given)."""
    layout = stream.layout
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("rows", "probs", "logcounts", "observed")}
    seen = 0
    bar = tqdm(stream.dataset(with_index=True), total=stream.n_batches, desc="predicting", unit="batch",
               disable=not progress)
    for inputs, targets, _, index in bar:
        n = int(index["row"].shape[0])
        mask = slice(None) if keep is None else np.isin(np.arange(seen, seen + n), keep)
        seen += n
        inputs = {k: np.asarray(v)[mask] for k, v in inputs.items()}
        if not len(inputs["sequence"]):
            continue
        logits, logcounts = predict_batch(predict_fn, inputs, layout,
                                          reverse_complement_average=reverse_complement_average,
                                          set_bias_as_zero=set_bias_as_zero)
        probs, window_lc = window_predictions(logits, logcounts, groups, window)
        parts["rows"].append(np.asarray(index["row"])[mask])
        parts["probs"].append(probs.astype(np.float32))
        parts["logcounts"].append(window_lc)
        parts["observed"].append(window.crop(np.asarray(targets["profile"])[mask]).astype(np.float32))
    loci = stream.reader.loci
    rows = np.concatenate(parts["rows"])
    return LocusPredictions(rows=rows, chrom=loci["chrom"].to_numpy()[rows], summit=loci["summit"].to_numpy()[rows],
                            probs=np.concatenate(parts["probs"]), logcounts=np.concatenate(parts["logcounts"]),
                            observed=np.concatenate(parts["observed"]),
                            track_group=TrackGroups.from_lists(groups).owner())


# ------------------------------------------------------------------------------------------ reference points


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
    model = M.compute_metrics(pred.observed, pred_probs=pred.probs, pred_logcounts=pred.logcounts,
                              task_tracks=groups, **names)
    base_probs, base_lc = M.baseline_predictions(reference_counts, groups, len(pred.rows))
    baseline = M.compute_metrics(pred.observed, pred_probs=base_probs, pred_logcounts=base_lc, task_tracks=groups,
                                 **names)
    bound = M.upper_bound(pred.observed, groups, seed=UPPER_BOUND_SEED, **names)
    return {"model": model, "baseline": baseline, "upper_bound": bound}


# ------------------------------------------------------------------------------------------ outputs


@dataclass
class PredictSummary:
    """What a prediction run produced."""

    output_dir: Path
    model_name: str
    mode: str  # "peaks" or "regions"
    n_examples: int
    files: list[Path]
    seconds: float
    table: str | None = None
    baseline_source: str | None = None
    results: dict[str, M.MetricsResult] = field(default_factory=dict, repr=False)

    def format(self) -> str:
        what = "loci" if self.mode == "peaks" else "windows"
        return (f"predicted {self.n_examples} {what} with {self.model_name} in {self.seconds:.1f} s; "
                f"{len(self.files)} files in {self.output_dir}")


def _template(out_dir: Path, model_name: str) -> str:
    """bigWig path template ``<out>/<model>_predictions_track_{i}.bw`` (braces in the name escaped)."""
    escaped = model_name.replace("{", "{{").replace("}", "}}")
    return str(out_dir / f"{escaped}_predictions_track_{{i}}.bw")


def chromosome_sizes(chrom_sizes: str | Path | None, reader: Any | None, purpose: str) -> dict[str, int]:
    """Chromosome sizes from a chrom.sizes file, else from the genome recorded in the store."""
    if chrom_sizes is not None:
        return read_chrom_sizes(chrom_sizes)
    genome = (reader.meta.get("genome") or {}) if reader is not None else {}
    if genome.get("chroms"):
        notice(f"{purpose}: chromosome sizes taken from the store's genome record ({genome.get('path')}).")
        return {str(c): int(n) for c, n in genome["chroms"].items()}
    raise InputError(f"{purpose} needs the chromosome sizes.", fix="Pass --chrom-sizes.")


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


# ------------------------------------------------------------------------------------------ regions mode


@contextlib.contextmanager
def open_controls(layout: StoreLayout, chroms: Sequence[str]) -> Iterator[dict[str, Any] | None]:
    """The layout's control bigWigs, open; None (bias inputs zero, with a notice) when one is missing. A notice
    names the chromosomes of ``chroms`` that some control lacks (their bias inputs are zero)."""
    from bpnetz.genome.bigwig import open_bigwig

    missing = sorted({t.source for t in layout.bias_tracks if not Path(t.source).is_file()})
    if missing:
        notice(f"control bigWig {missing[0]} is missing: the bias inputs of the regions are zero.")
        yield None
        return
    handles = {t.source: open_bigwig(t.source) for t in layout.bias_tracks}
    try:
        absent = sorted({c for c in chroms for h in handles.values() if c not in h.chroms()})
        if absent:
            notice(f"the controls lack {', '.join(absent[:5])}: bias inputs there are zero.")
        yield handles
    finally:
        for handle in handles.values():
            handle.close()


def region_bias(layout: StoreLayout, controls: Mapping[str, Any] | None, windows: Windows) -> dict[str, np.ndarray]:
    """``profile_bias`` and ``counts_bias`` of windows from the open controls (as the store builder reads and
    smooths them); zeros without controls or on chromosomes a control lacks."""
    from bpnetz.build.builder import bias_block

    profile = np.zeros((len(windows), layout.output_len, layout.n_bias), dtype=np.float32)
    if controls is not None:
        covered = set.intersection(*(set(h.chroms()) for h in controls.values()))
        inside = np.isin(windows.chrom.astype(str), sorted(covered))
        if inside.any():
            profile[inside], _ = bias_block(controls, layout.bias_tracks, windows.chrom[inside],
                                             windows.out_start[inside], layout.output_len)
    return {"profile_bias": profile, "counts_bias": np.log1p(profile.sum(axis=1, dtype=np.float64))}


@contextlib.contextmanager
def track_bigwig_writers(path_template: str, chrom_sizes: Mapping[str, int],
                         n_tracks: int) -> Iterator[list[Any]]:
    """One open bigWig per track (header = every chromosome of ``chrom_sizes``), written atomically."""
    import pyBigWig

    with contextlib.ExitStack() as stack:
        handles = []
        for i in range(n_tracks):
            tmp = stack.enter_context(atomic_output(path_template.format(i=i)))
            handle = pyBigWig.open(str(tmp), "w")
            stack.callback(handle.close)  # closed before the rename (callbacks run last-in, first-out)
            handle.addHeader([(str(c), int(s)) for c, s in chrom_sizes.items()])
            handles.append(handle)
        yield handles


def _take(windows: Windows, index: np.ndarray) -> Windows:
    return replace(windows, chrom=windows.chrom[index], out_start=windows.out_start[index],
                   in_start=windows.in_start[index])


def model_windows(tiles: Windows, output_len: int) -> Windows:
    """The model's full output windows around tiles (tiles may be the cropped ``output_window_size``)."""
    return replace(tiles, out_start=tiles.summit - output_len // 2, output_len=output_len)


def predict_regions(predict_fn: PredictFn, layout: StoreLayout, tiles: Windows, fasta: str | Path,
                    chrom_sizes: Mapping[str, int], path_template: str, groups: M.TaskTracks, window: Window, *,
                    batch_size: int, reverse_complement_average: bool, set_bias_as_zero: bool, use_bias: bool,
                    progress: bool) -> list[Path]:
    """Predict every tile and stream the predicted counts into one bigWig per track, in genome order.

    ``tiles`` have the evaluated window's length (:func:`bpnetz.predict.regions.tile_regions` with
    ``window.size``); each is the centre crop of the model's output window around the same summit. Overlapping
    tiles (at the ends of nearby regions) are split at the midpoint between their centres, as for peaks.
    """
    order, seg_start, seg_end = locus_segments(tiles.chrom, tiles.out_start, window.size, chrom_sizes)
    keep = seg_end > seg_start
    order, seg_start, seg_end = order[keep], seg_start[keep], seg_end[keep]
    owner = TrackGroups.from_lists(groups).owner()
    bar = tqdm(total=-(-len(order) // batch_size), desc="predicting regions", unit="batch", disable=not progress)
    controls = open_controls(layout, sorted(set(tiles.chrom))) if use_bias else contextlib.nullcontext()
    with track_bigwig_writers(path_template, chrom_sizes, layout.n_tracks) as handles, controls as bigwigs:
        for lo in range(0, len(order), REGION_CHUNK):
            chunk = _take(tiles, order[lo:lo + REGION_CHUNK])
            onehot = sequence.one_hot(read_sequences(fasta, chunk))
            bias = region_bias(layout, bigwigs, model_windows(chunk, layout.output_len)) if use_bias else {}
            for b in range(0, len(chunk), batch_size):
                inputs = {"sequence": onehot[b:b + batch_size], **{k: v[b:b + batch_size] for k, v in bias.items()}}
                logits, logcounts = predict_batch(predict_fn, inputs, layout,
                                                  reverse_complement_average=reverse_complement_average,
                                                  set_bias_as_zero=set_bias_as_zero)
                probs, window_lc = window_predictions(logits, logcounts, groups, window)
                counts = (probs * np.exp(window_lc[:, owner])[:, None, :]).astype(np.float64)
                for k in range(len(counts)):
                    j = lo + b + k
                    first = int(seg_start[j] - chunk.out_start[b + k])
                    values = counts[k, first:first + int(seg_end[j] - seg_start[j])]
                    for t, handle in enumerate(handles):
                        handle.addEntries(str(chunk.chrom[b + k]), int(seg_start[j]),
                                          values=np.ascontiguousarray(values[:, t]), span=1, step=1)
                bar.update()
    bar.close()
    return [Path(path_template.format(i=i)) for i in range(layout.n_tracks)]


# ------------------------------------------------------------------------------------------ the pipeline


def _subset_chroms(reader: Any, split: Split | None, subset: str, chroms: Sequence[str] | None) -> list[str]:
    """Chromosomes to predict: explicit ``chroms`` (those the store lacks are named in a notice), else the
    model's split subset, else every chromosome of the store."""
    store_chroms = reader.chromosomes
    if chroms is not None:
        absent = [c for c in chroms if c not in store_chroms]
        if len(absent) == len(chroms):
            raise InputError(f"none of the chromosomes {', '.join(list(chroms)[:6])} holds a locus of the store "
                             f"(its loci are on {', '.join(store_chroms[:10])}).", path=reader.path,
                             fix="Check --chroms against the store's chromosome names.")
        if absent:
            notice(f"the store has no loci on {', '.join(absent[:10])}.")
        return [c for c in chroms if c in store_chroms]
    if subset == "all":
        return store_chroms
    if split is None:
        raise InputError(f"--split {subset} needs the model's {SPLITS_FILE}, which its directory lacks.",
                         fix="Pass --chroms, or --split all.")
    return split.chroms(subset, store_chroms)


def read_test_indices(test_indices: str | Path | Sequence[int] | None, n: int) -> np.ndarray | None:
    """0-based positions into the evaluated loci (store order): a list, or a file of one integer per line."""
    if test_indices is None:
        return None
    if isinstance(test_indices, (str, Path)):
        path = Path(test_indices)
        if not path.is_file():
            raise InputError("the test indices file does not exist.", path=path)
        values = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                try:
                    values.append(int(line.strip()))
                except ValueError:
                    raise InputError(f"line {number} is not an integer: {line.strip()!r}.", path=path,
                                     fix="Write one 0-based index per line.") from None
        test_indices = values
    index = np.unique(np.asarray(test_indices, dtype=np.int64))
    if len(index) == 0 or index.min() < 0 or index.max() >= n:
        raise InputError(f"test indices must be 0-based positions among the {n} evaluated loci "
                         f"(got {len(index)} indices from {index.min(initial=0)} to {index.max(initial=0)}).",
                         fix="Index the loci of the selected chromosomes in genome order.")
    return index


@dataclass
class PredictionRun:
    """The model and the settings shared by both modes."""

    model_dir: ModelDir
    model: Any
    shape: ModelShape
    out_dir: Path
    window: Window
    batch_size: int
    reverse_complement_average: bool
    set_bias_as_zero: bool
    orig_multi_loss: bool | None
    progress: bool

    def open_store(self, store: str | Path | None, store_args: dict[str, Any]) -> Any:
        """The store reader, checked against the model; a notice when it is not the model's training store."""
        from bpnetz.store.loader import StoreReader

        path = resolve_store(self.model_dir, store, input_len=self.shape.input_len,
                             output_len=self.shape.output_len, progress=self.progress, **store_args)
        reader = StoreReader(path)
        self.per_track(reader.layout)
        trained_on = self.model_dir.store_record.get("checksum")
        if trained_on and reader.meta.get("checksum") and trained_on != reader.meta["checksum"]:
            notice(f"{path} is not the store the model was trained on (checksum {reader.meta['checksum']} vs "
                   f"{trained_on}); its windows match the model, so prediction goes on.")
        return reader

    def per_track(self, layout: StoreLayout) -> bool:
        """Whether the model predicts one log count per track (orig_multi_loss); raises when it cannot read
        windows of this layout."""
        return check_model_matches(self.shape, layout, self.model_dir.path, self.orig_multi_loss)

    def groups(self, layout: StoreLayout) -> tuple[list[list[int]], list[str]]:
        """Softmax groups (per task, or per track with per-track log counts) and their names."""
        groups = TrackGroups.of(layout, per_track=self.per_track(layout))
        return groups.softmax(), groups.names(layout)

    def settings(self) -> dict[str, Any]:
        return {"model": str(self.model_dir.path), "reverse_complement_average": self.reverse_complement_average,
                "output_window_size": self.window.size, "set_bias_as_zero": self.set_bias_as_zero}


def predict(model_dir: str | Path, *, store: str | Path | None = None, input_data: str | Path | None = None,
            reference_genome: str | Path | None = None, chrom_sizes: str | Path | None = None,
            split: str = "test", chroms: Sequence[str] | None = None, output_dir: str | Path,
            batch_size: int = 64, reverse_complement_average: bool = False, output_window_size: int | None = None,
            set_bias_as_zero: bool = False, generate_bigwigs: bool = False,
            regions: str | Path | None = None, tile: Sequence[str] | str | None = None,
            test_indices: str | Path | Sequence[int] | None = None, orig_multi_loss: bool | None = None,
            peaks_only: bool = True, cache_dir: str | Path | None = None,
            expected_lengths: tuple[int, int] | None = None, progress: bool = True) -> PredictSummary:
    """Predict with a trained model; see the module docstring. Returns what was written.

    ``store`` (a built store) or raw inputs (``input_data`` + ``reference_genome`` + ``chrom_sizes``: the store is
    found or built under ``cache_dir``) or, with neither, the model's training store. ``split`` picks the model's
    test/val/train chromosomes or ``all``; ``chroms`` overrides it. ``regions`` (BED) / ``tile`` (chromosome
    names) switch to regions mode. ``orig_multi_loss`` None reads it from the model's log-count outputs.
    ``expected_lengths`` (input, output), when given, must be the model's (``bpnet-predict``'s
    ``--input-seq-len`` / ``--output-len``).
    """
    began = time.perf_counter()
    if split not in SUBSETS:
        raise InputError(f"--split must be one of {', '.join(SUBSETS)}, got {split!r}.")
    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_size}.")
    if regions is not None and tile is not None:
        raise InputError("give either --regions or --tile, not both.")
    mdir = ModelDir.open(model_dir)
    from bpnetz.model.registry import load_model

    model = load_model(mdir.model_file, compile=False)
    shape = ModelShape.of(model)
    if expected_lengths is not None and tuple(expected_lengths) != (shape.input_len, shape.output_len):
        raise InputError(f"--input-seq-len {expected_lengths[0]} and --output-len {expected_lengths[1]} do not match "
                         f"the model, which takes {shape.input_len} bases and predicts {shape.output_len}.",
                         path=mdir.model_file, fix=f"Pass --input-seq-len {shape.input_len} --output-len "
                                                   f"{shape.output_len}.")
    store_args = {"input_data": input_data, "reference_genome": reference_genome, "chrom_sizes": chrom_sizes,
                  "cache_dir": cache_dir}
    final = Path(output_dir)
    with output_directory(final, what="prediction output directory") as tmp:  # all files of one run, or none
        run = PredictionRun(model_dir=mdir, model=model, shape=shape, out_dir=tmp,
                            window=window_of(shape.output_len, output_window_size), batch_size=batch_size,
                            reverse_complement_average=reverse_complement_average,
                            set_bias_as_zero=set_bias_as_zero, orig_multi_loss=orig_multi_loss, progress=progress)
        if regions is not None or tile is not None:
            summary = _predict_regions_run(run, store, store_args, regions,
                                           [tile] if isinstance(tile, str) else tile)
        else:
            summary = _predict_peaks_run(run, store, store_args, split, chroms, test_indices, peaks_only,
                                         generate_bigwigs)
    summary.output_dir, summary.files = final, [relocated(f, tmp, final) for f in summary.files]
    summary.seconds = time.perf_counter() - began
    return summary


def _predict_peaks_run(run: PredictionRun, store: str | Path | None, store_args: dict[str, Any], split: str,
                       chroms: Sequence[str] | None, test_indices: Any, peaks_only: bool,
                       generate_bigwigs: bool) -> PredictSummary:
    from bpnetz.store.loader import LocusStream

    reader = run.open_store(store, store_args)
    layout, mdir, window = reader.layout, run.model_dir, run.window
    groups, group_names = run.groups(layout)
    per_track = run.per_track(layout)
    chosen = _subset_chroms(reader, mdir.split, split, chroms)
    stream = LocusStream(reader, None, "all", batch_size=run.batch_size, all_chroms=chosen, jitter=False,
                         shuffle=False, reverse_complement="none", backgrounds="none" if peaks_only else "all",
                         orig_multi_loss=per_track, progress=run.progress)
    keep = read_test_indices(test_indices, stream.n_loci)
    sizes = (chromosome_sizes(store_args["chrom_sizes"], reader, "--generate-predicted-profile-bigWigs")
             if generate_bigwigs else None)
    pred = predict_loci(stream, model_predict_fn(run.model), groups, window,
                        reverse_complement_average=run.reverse_complement_average,
                        set_bias_as_zero=run.set_bias_as_zero, keep=keep, progress=run.progress)
    kinds = [schema.KIND_PEAK] if peaks_only else [schema.KIND_PEAK, schema.KIND_BACKGROUND]
    reference, baseline_source = baseline_reference(reader, mdir.split, reader.chromosomes, kinds, window, pred)
    reader.check_unchanged()  # every row came from the store opened (never two stores mixed)
    results = evaluate(pred, reference, groups, [t.name for t in layout.tracks], group_names)
    settings = {**run.settings(), "store": reader.path, "split": "chroms" if chroms is not None else split,
                "chroms": chosen, "peaks_only": peaks_only, "orig_multi_loss": per_track,
                "test_indices": None if keep is None else len(keep),
                "baseline": {"source": baseline_source,
                             "definition": "every example predicted with the average observed profile shape and "
                                           "the mean observed log count of the reference loci"},
                "upper_bound": {"definition": "binomial thinning: one half of the observed counts predicts the "
                                              "other (a half-depth replicate)", "seed": UPPER_BOUND_SEED}}
    files = write_peak_outputs(run.out_dir, mdir.name, pred, results, layout, groups, group_names, window,
                               settings)
    if sizes is not None:
        files += write_track_bigwigs(_template(run.out_dir, mdir.name), sizes, pred.chrom,
                                     pred.summit - layout.output_len // 2 + window.offset, pred.counts,
                                     [t.name for t in layout.tracks])
    table = M.metrics_table({"model": results["model"], "baseline": results["baseline"],
                             "upper bound": results["upper_bound"]})
    return PredictSummary(output_dir=run.out_dir, model_name=mdir.name, mode="peaks", n_examples=len(pred.rows),
                          files=files, seconds=0.0, table=table, baseline_source=baseline_source, results=results)


def _predict_regions_run(run: PredictionRun, store: str | Path | None, store_args: dict[str, Any],
                         regions: str | Path | None, tile: Sequence[str] | None) -> PredictSummary:
    mdir, shape = run.model_dir, run.shape
    recorded = mdir.recorded_store()
    reader = None
    if store is not None or store_args["input_data"] is not None or (recorded is not None and recorded.exists()):
        reader = run.open_store(store, store_args)
        layout = reader.layout
    else:
        layout = mdir.recorded_layout()
        if layout is None:
            raise InputError(f"regions mode needs the store layout (tracks and controls): no store given, and no "
                             f"layout in {STORE_RECORD}.", path=mdir.path, fix="Pass --store.")
    groups, _ = run.groups(layout)
    fasta = store_args["reference_genome"] or ((reader.meta.get("genome") or {}).get("path") if reader else None)
    if fasta is None:
        raise InputError("regions mode reads the sequences from the genome FASTA.", fix="Pass --reference-genome.")
    sizes = chromosome_sizes(store_args["chrom_sizes"], reader, "regions mode")
    spans = read_regions_bed(regions) if regions is not None else chromosome_regions(list(tile or []), sizes)
    tiles = tile_regions(spans, sizes, shape.input_len, run.window.size)
    files = predict_regions(model_predict_fn(run.model), layout, tiles, fasta, sizes,
                            _template(run.out_dir, mdir.name), groups, run.window, batch_size=run.batch_size,
                            reverse_complement_average=run.reverse_complement_average,
                            set_bias_as_zero=run.set_bias_as_zero, use_bias=shape.n_bias is not None,
                            progress=run.progress)
    return PredictSummary(output_dir=run.out_dir, model_name=mdir.name, mode="regions", n_examples=len(tiles),
                          files=files, seconds=0.0)
