"""Train BPNet models from a store: one model per splits.json fold, the best weights (by validation loss) kept.

Each fold's model directory (its names and files: :mod:`bpnetz.model.contract`) holds ``model.keras`` (loadable
with ``keras.models.load_model`` once :mod:`bpnetz.model.registry` is imported), the params, the fold (training
chromosomes resolved), the history, TensorBoard logs, learning curves, the store record and the training record;
it is written into a temporary directory under the model directory's lock and swapped in when the model is
complete (:func:`bpnetz.files.atomic.output_directory`): a second training into the same model directory fails
at once naming the first, whose model is kept. Fold keys and the model name are checked before anything is
written (:func:`~bpnetz.model.contract.model_dir_name`).

Adam; early stopping on the validation loss with patience and min-delta; learning rate reduced on plateau down
to the minimum. The kept weights are those of the epoch with the lowest validation loss (exactly: Keras'
``restore_best_weights`` would keep the last epoch that improved by more than min-delta, which can differ).
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bpnetz.config import BpnetParams, Split, Splits, check_split_chroms
from bpnetz.errors import InputError, notice
from bpnetz.files.atomic import output_directory
from bpnetz.files.names import path_under
from bpnetz.model.contract import (
    MODEL_FILE,
    PARAMS_FILE,
    TrackGroups,
    check_lengths,
    model_dir_name,
    write_fold_records,
    write_history,
    write_training_record,
)
from bpnetz.model.data import raise_stream_failures, stream_dataset
from bpnetz.model.memory import peak_rss_gb
from bpnetz.model.options import TrainOptions
from bpnetz.store import schema
from bpnetz.store.reader import StoreReader
from bpnetz.store.stream import LocusStream

#: training loci the counts head is calibrated on before training (see bpnet.calibrate_counts_head)
CALIBRATION_LOCI = 2048
#: stream epochs read before training (the calibration's): training epoch e reads the stream's epoch e + this
CALIBRATION_EPOCHS = 1


@dataclass
class TrainingSummary:
    """What one fold's training did: written to training.json and printed at the end."""

    fold: str
    model_dir: str
    epochs_run: int
    best_epoch: int  # 1-based
    best_val_loss: float
    best_val_profile_loss: float | None
    best_val_logcounts_loss: float | None
    train_loci_per_epoch: int
    val_loci: int
    seconds: float
    train_examples_per_second: float
    counts_refit: dict[str, Any] | None = None  # the counts head's choice and its fit (counts_head.fit_counts_head)
    peak_rss_gb: float | None = None  # the process' peak resident memory so far (VmHWM, see model/memory.py)
    replicas: int = 1  # devices trained on, on all workers together
    workers: int = 1  # processes (hosts) trained on: see model/devices.py

    def line(self) -> str:
        parts = [(f"{Path(self.model_dir).name}: best epoch {self.best_epoch}/{self.epochs_run}, "
                  f"val loss {self.best_val_loss:.4g}")]
        if self.best_val_profile_loss is not None and self.best_val_logcounts_loss is not None:
            parts.append(f" (profile {self.best_val_profile_loss:.4g}, counts {self.best_val_logcounts_loss:.4g})")
        if self.counts_refit is not None:
            from bpnetz.model.counts_head import describe

            parts.append(f"; {describe(self.counts_refit)}")
        parts.append(f", {self.seconds:.0f} s, {self.train_examples_per_second:,.0f} training examples/s")
        if self.peak_rss_gb is not None:
            parts.append(f", peak memory {self.peak_rss_gb:.2f} GB")
        return "".join(parts)


def check_model_lengths(params: BpnetParams, store_layout: schema.StoreLayout, *, input_len: int | None = None,
                        output_len: int | None = None, params_path: str = PARAMS_FILE) -> None:
    """Clear errors when the params' or the command line's lengths disagree with the store's."""
    check_lengths(store_layout, params.input_len, params.output_profile_len, who=params_path,
                  names=("input length", "output_profile_len"), where=params_path)
    for name, given, wanted in (("--input-seq-len", input_len, params.input_len),
                                ("--output-len", output_len, params.output_profile_len)):
        if given is not None and given != wanted:
            raise InputError(f"{name} {given} disagrees with {params_path} ({wanted}) and the store.",
                             fix=f"Drop {name} or set it to {wanted}.")


# ------------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class FoldRun:
    """What one fold's fit needs beside its streams: params, store layout, the strategy, and where the training
    state is kept between epochs with the fingerprint it must match (:mod:`bpnetz.model.resume`)."""

    params: BpnetParams
    layout: schema.StoreLayout
    strategy: Any
    checkpoint: Path
    digest: str


@dataclass(frozen=True)
class FoldStreams:
    """One fold's streams: ``train`` (this worker's share under several workers), ``val``, and ``whole``, the
    training stream unsharded with the global batch (``train`` itself on one host) that the counts head is
    calibrated on before training and refit on after it, so every worker calibrates alike."""

    train: LocusStream
    val: LocusStream
    whole: LocusStream


def _set_threads(threads: int | None) -> None:
    import tensorflow as tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # TensorFlow already initialised in this process
            pass


def train(store: str | Path, params: BpnetParams, splits: Splits, output_dir: str | Path,
          options: TrainOptions | None = None, *, callbacks: Sequence[Any] = ()) -> list[Path]:
    """Train one model per fold of ``splits`` (or ``options.folds``); returns the model directories.

    ``options``: see :class:`~bpnetz.model.options.TrainOptions` (None: its defaults). ``callbacks`` are extra
    Keras callbacks.
    """
    from bpnetz.model.devices import training_strategy

    options = options or TrainOptions()
    _set_threads(options.threads)
    strategy = training_strategy(options.devices)
    reader = StoreReader(store)
    check_model_lengths(params, reader.layout, input_len=options.input_len, output_len=options.output_len,
                        params_path=options.params_path)
    keys = list(options.folds) if options.folds is not None else list(splits.folds)
    missing = [k for k in keys if k not in splits.folds]
    if missing:
        raise InputError(f"no fold {', '.join(missing)} in splits.json (folds: {', '.join(splits.folds)}).")
    check_split_chroms({k: splits.folds[k] for k in keys}, reader.chromosomes, path=splits.path,
                       all_chroms=options.chroms)
    output_dir = Path(output_dir)
    for key in keys:  # every name checked before anything is written
        path_under(output_dir, model_dir_name(options.model_name, key, source=options.splits_path))
    output_dir.mkdir(parents=True, exist_ok=True)
    summaries = [_train_fold(reader, params, key, splits.folds[key], output_dir, options, strategy,
                             callbacks=callbacks) for key in keys]
    if options.verbose and len(summaries) > 1:
        print("\n".join(summary.line() for summary in summaries), file=sys.stderr)
    return [Path(summary.model_dir) for summary in summaries]


def _fold_streams(reader: StoreReader, key: str, fold: Split, options: TrainOptions,
                  strategy: Any = None) -> FoldStreams:
    """The training stream (augmented, shuffled, backgrounds redrawn per epoch) and the fixed validation one.

    Under several workers (:func:`~bpnetz.model.devices.worker_shard`) the training stream yields this worker's
    share of each epoch, and both streams yield per-replica batches (the global batch over the replicas)."""
    from bpnetz.model.devices import worker_shard

    shard = None if strategy is None else worker_shard(strategy)
    common = {"batch_size": options.batch_size, "all_chroms": options.chroms, "seed": options.seed,
              "mnll_loss_sample_weight": options.mnll_loss_sample_weight,
              "mnll_background_weight": options.mnll_loss_background_sample_weight,
              "counts_background_weight": options.counts_loss_background_sample_weight,
              "orig_multi_loss": options.orig_multi_loss, "cache": options.stream_cache,
              "progress": bool(options.verbose)}
    if shard is not None:
        common["batch_size"] = _replica_batch(options.batch_size, strategy.num_replicas_in_sync)
    train_stream = LocusStream(reader, fold, "train", reverse_complement=options.reverse_complement,
                               shuffle=options.shuffle, shard=shard, **common)
    if shard is not None:
        _check_equal_steps(train_stream, shard[1], strategy.num_replicas_in_sync // shard[1])
    val_stream = LocusStream(reader, fold, "val", **common)
    if options.verbose:
        print(f"fold {key}: training on {', '.join(train_stream.selection.chroms)} "
              f"({train_stream.selection.n_examples:,} loci per epoch, "
              f"{len(train_stream.selection.peak_positions):,} peaks), "
              f"validating on {', '.join(val_stream.selection.chroms)} ({val_stream.n_loci:,} loci); "
              f"{'RAM-cached' if train_stream.cached else 'streamed from disk'}"
              + (f"; worker {shard[0] + 1} of {shard[1]}: {train_stream.n_loci:,} loci" if shard else ""),
              file=sys.stderr)
    whole = train_stream if shard is None else LocusStream(
        reader, fold, "train", reverse_complement=options.reverse_complement, shuffle=options.shuffle,
        **{**common, "batch_size": options.batch_size, "cache": False, "progress": False})
    return FoldStreams(train_stream, val_stream, whole)


def _replica_batch(global_batch: int, replicas: int) -> int:
    if global_batch % replicas:
        raise InputError(f"the batch size {global_batch} does not split evenly across {replicas} replicas.",
                         fix=f"Use a multiple of {replicas} for --batch-size (the global batch).")
    return global_batch // replicas


def _check_equal_steps(stream: LocusStream, workers: int, local_replicas: int) -> None:
    """Every worker must run the same number of steps per epoch (each step's all-reduce waits for all of them):
    the shares differ by at most one locus, which costs a step only when the larger share ends one locus into
    a step."""
    total, batch = stream.selection.n_examples, stream.batch_size
    shares = sorted({(k + 1) * total // workers - k * total // workers for k in range(workers)})
    doubled = 2 if stream.reverse_complement == "double" else 1
    steps = sorted({math.ceil(math.ceil(n / batch) * doubled / local_replicas) for n in shares})
    if len(steps) > 1:
        raise InputError(f"{total:,} training loci per epoch in {workers} shares of {shares} loci give the workers "
                         f"{steps} steps of {local_replicas} batches of {batch}: they must run equal steps.",
                         fix=f"Change --batch-size by a multiple of {workers * local_replicas} (the replicas).")


def _schedule_callbacks(options: TrainOptions) -> list[Any]:
    """Early stopping on the validation loss, and the learning rate reduced on plateau down to the minimum."""
    import keras

    verbose = int(bool(options.verbose))
    return [keras.callbacks.EarlyStopping(monitor="val_loss", patience=options.early_stopping_patience,
                                          min_delta=options.early_stopping_min_delta, verbose=verbose),
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=options.lr_reduction_factor,
                                              patience=options.reduce_lr_on_plateau_patience,
                                              min_lr=options.min_learning_rate, verbose=verbose)]

def _compiled_model(params: BpnetParams, store_layout: schema.StoreLayout, options: TrainOptions) -> Any:
    """The model, compiled for training (call inside the strategy's scope)."""
    from bpnetz.model.bpnet import build_model, compile_model

    model = build_model(params, store_layout, orig_multi_loss=options.orig_multi_loss)
    return compile_model(model, params, learning_rate=options.learning_rate,
                         task_tracks=TrackGroups.of(store_layout).task_lists(),
                         orig_multi_loss=options.orig_multi_loss, jit_compile=bool(options.xla))


def _float32_twin(model: Any, params: BpnetParams, store_layout: schema.StoreLayout, options: TrainOptions) -> Any:
    """A float32 copy of a mixed-precision model (same weights, which mixed precision keeps in float32): it
    predicts and attributes in full precision anywhere and loads without the loss-scaling optimizer's state."""
    from bpnetz.model.bpnet import build_model, compile_model

    twin = build_model(params, store_layout, orig_multi_loss=options.orig_multi_loss)
    twin.set_weights(model.get_weights())
    twin = compile_model(twin, params, learning_rate=options.learning_rate,
                         task_tracks=TrackGroups.of(store_layout).task_lists(), orig_multi_loss=options.orig_multi_loss)
    twin.optimizer.build(twin.trainable_variables)  # saved with (fresh) state, so it loads without warnings
    return twin


def _fit(directory: Path, run: FoldRun, streams: FoldStreams, options: TrainOptions,
         *, callbacks: Sequence[Any]) -> tuple[dict[str, list[float]], int, float, dict[str, Any] | None]:
    """Build, compile and fit a model (resuming from ``run.checkpoint`` when a killed run left one there); save
    the best epoch's weights as ``directory/model.keras``.

    Returns the history, the best (0-based) epoch, the seconds spent in training batches and the counts-head
    refit's record (None when not tried, and on a cluster's workers but the chief).
    """
    import keras

    from bpnetz.model import registry  # noqa: F401  (registers the custom objects for saving/loading)
    from bpnetz.model.callbacks import EpochScalars, KeepBestWeights, PinStreamEpoch, TrainingTime
    from bpnetz.model.devices import clip_across_replicas, fit_across_workers, is_chief, nonfinite_loss_guard
    from bpnetz.model.resume import EpochCheckpoint

    keras.utils.set_random_seed(options.seed)
    previous_policy = keras.config.dtype_policy()
    if options.mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        with run.strategy.scope():
            model = _compiled_model(run.params, run.layout, options)
        if run.strategy.num_replicas_in_sync > 1:
            clip_across_replicas(model.optimizer)
        fit_across_workers(model, run.strategy)
        schedules, keep_best, timer = _schedule_callbacks(options), KeepBestWeights("val_loss"), TrainingTime()
        checkpoint = EpochCheckpoint(run.checkpoint, run.digest, schedules=schedules, keep_best=keep_best,
                                     timer=timer, streams=(streams.train, streams.val))
        if checkpoint.initial_epoch == 0:
            with run.strategy.scope():
                _calibrate(model, run.layout, streams.whole, options)
        else:
            checkpoint.restore_streams()
            notice(f"resuming {directory.name.split('.bpnetz-tmp-')[0].lstrip('.')} after epoch "
                   f"{checkpoint.initial_epoch}, from {run.checkpoint}.")
        fit_callbacks = [PinStreamEpoch(streams.train, CALIBRATION_EPOCHS), *schedules,
                         EpochScalars(directory / "logs"), keep_best, timer, checkpoint, *callbacks]
        if run.strategy.num_replicas_in_sync > 1:
            fit_callbacks.insert(0, nonfinite_loss_guard(run.strategy))
        # a continuous training dataset starts at the stream's epoch when Keras first iterates it
        streams.train.epoch = CALIBRATION_EPOCHS + checkpoint.initial_epoch
        with raise_stream_failures(streams.train, streams.val):
            train_data, val_data, steps = _fit_datasets(streams, run.strategy)
            model.fit(train_data, validation_data=val_data, steps_per_epoch=steps,
                      epochs=checkpoint.last_epoch(options.epochs), initial_epoch=checkpoint.initial_epoch,
                      callbacks=fit_callbacks, verbose=options.verbose, shuffle=False)  # the stream shuffles itself
    finally:
        keras.config.set_dtype_policy(previous_policy)
    if options.mixed_precision:
        model = _float32_twin(model, run.params, run.layout, options)
    refit = (_fit_counts_head(model, run.params, run.layout, streams.whole, streams.val, options)
             if is_chief(run.strategy) else None)
    model.save(directory / MODEL_FILE)
    return checkpoint.history, keep_best.best_epoch, timer.seconds, refit


def _fit_datasets(streams: FoldStreams, strategy: Any) -> tuple[Any, Any, int | None]:
    """The training and validation datasets of ``fit`` and its ``steps_per_epoch``.

    On one host the training dataset is continuous (every epoch from one iterator, ``steps_per_epoch`` batches
    each: Keras keeps the iterator across epochs), which spares each epoch tf.data's restart (see
    :meth:`~bpnetz.store.stream.LocusStream.epochs`; 40-360 ms per epoch, a third of a small store's epoch).
    Under several workers each dataset is handed to the strategy as this worker's input pipeline of per-replica
    batches (``distribute_datasets_from_function``: no rebatching, no auto-sharding) and stays one iteration per
    epoch: the training stream is already this worker's share, whose batch count may differ from another
    worker's by one, and every worker validates on all the validation loci, so all of them see the same
    validation loss."""
    from bpnetz.model.devices import worker_shard

    if worker_shard(strategy) is None:
        return stream_dataset(streams.train, continuous=True), stream_dataset(streams.val), streams.train.n_batches
    train, val = (strategy.distribute_datasets_from_function(lambda _context, stream=stream: stream_dataset(stream))
                  for stream in (streams.train, streams.val))
    return train, val, None


def _calibrate(model: Any, store_layout: schema.StoreLayout, train_stream: LocusStream,
               options: TrainOptions) -> None:
    """Start the counts head at the mean log count of the first training batches."""
    from bpnetz.model.bpnet import calibrate_counts_head

    with raise_stream_failures(train_stream):
        calibration = itertools.islice(stream_dataset(train_stream), max(1, CALIBRATION_LOCI // options.batch_size))
        calibrate_counts_head(model, store_layout, calibration, orig_multi_loss=options.orig_multi_loss)
        del calibration  # ends the half-read epoch now (its generator holds a pair of streamed-block buffers)


def _fit_counts_head(model: Any, params: BpnetParams, store_layout: schema.StoreLayout, train_stream: LocusStream,
                     val_stream: LocusStream, options: TrainOptions) -> dict[str, Any] | None:
    """The counts head's choice and calibration on validation peaks (MSE counts loss and ``refit_counts_head``),
    or only its assessment; see :func:`bpnetz.model.counts_head.fit_counts_head`."""
    from bpnetz.model.counts_head import fit_counts_head

    peak_rows = train_stream.reader.loci["kind"].to_numpy() == schema.KIND_PEAK
    with raise_stream_failures(train_stream, val_stream):
        return fit_counts_head(model, store_layout, stream_dataset(train_stream, with_index=True),
                               stream_dataset(val_stream, with_index=True), peak_rows,
                               refit=options.refit_counts_head and params.counts_loss == "MSE",
                               orig_multi_loss=options.orig_multi_loss)


def _write_records(directory: Path, name: str, key: str, fold: Split, params: BpnetParams, reader: StoreReader,
                   train_stream: LocusStream, history: dict[str, list[float]], best: int) -> None:
    """Everything beside the model: history, learning curves, params, the fold and the store's identity."""
    from bpnetz.model.plots import plot_learning_curves

    write_history(history, directory)
    plot_learning_curves(history, directory / "learning_curves.png", best_epoch=best if best >= 0 else None,
                         title=f"{name} (kept epoch {best + 1})")
    resolved = fold.model_copy(update={"train": train_stream.selection.chroms})
    write_fold_records(directory, key, resolved, params.to_json(), reader)


def _train_fold_into(partial: Path, final: Path, reader: StoreReader, run: FoldRun, key: str, fold: Split,
                     options: TrainOptions, *, callbacks: Sequence[Any]) -> TrainingSummary:
    """Train one fold's model and write everything into ``partial`` (to become ``final``); returns the summary."""
    from bpnetz.model.devices import worker_shard

    began = time.perf_counter()
    streams = _fold_streams(reader, key, fold, options, run.strategy)
    history, best, train_seconds, refit = _fit(partial, run, streams, options, callbacks=callbacks)
    _write_records(partial, final.name, key, fold, run.params, reader, streams.whole, history, best)

    def at_best(name: str) -> float | None:
        values = history.get(name)
        return float(values[best]) if values and best >= 0 else None

    epochs_run = len(history.get("loss", []))
    val_loss = at_best("val_loss")
    summary = TrainingSummary(
        fold=key, model_dir=str(final), epochs_run=epochs_run, best_epoch=best + 1,
        best_val_loss=math.nan if val_loss is None else val_loss, best_val_profile_loss=at_best("val_profile_loss"),
        best_val_logcounts_loss=at_best("val_logcounts_loss"), train_loci_per_epoch=streams.whole.n_examples,
        val_loci=streams.val.n_examples, seconds=time.perf_counter() - began,
        train_examples_per_second=streams.whole.n_examples * epochs_run / max(train_seconds, 1e-9),
        counts_refit=refit, peak_rss_gb=peak_rss_gb(), replicas=int(run.strategy.num_replicas_in_sync),
        workers=(worker_shard(run.strategy) or (0, 1))[1])
    write_training_record(partial, options.record(), asdict(summary))
    return summary


def _train_fold(reader: StoreReader, params: BpnetParams, key: str, fold: Split, output_dir: Path,
                options: TrainOptions, strategy: Any, *, callbacks: Sequence[Any]) -> TrainingSummary:
    """Train, save and describe one fold's model in a temporary directory, then swap it into place; the training
    state saved after each epoch beside it resumes a killed run, and is removed once the model is in place.

    Under several workers only the chief writes into ``output_dir``; every worker keeps its training state, and
    the others their model directory, in a temporary directory removed at the end (such a run does not
    resume: the workers would have to agree on the epoch to resume from)."""
    from bpnetz.model.devices import is_chief, wait_for_workers, worker_shard
    from bpnetz.model.resume import checkpoint_dir, fingerprint

    scratch = None if worker_shard(strategy) is None else Path(tempfile.mkdtemp(prefix="bpnetz-worker-"))
    name = model_dir_name(options.model_name, key)
    final = path_under(output_dir if scratch is None or is_chief(strategy) else scratch, name)
    digest = fingerprint(options.record(), json.loads(params.to_json()), fold.model_dump(mode="json"),
                         {"checksum": reader.meta.get("checksum"), "path": str(Path(reader.path).absolute())})
    run = FoldRun(params, reader.layout, strategy, checkpoint_dir(final) if scratch is None else scratch / "resume",
                  digest)
    try:
        with output_directory(final, what="model directory") as partial:
            summary = _train_fold_into(partial, final, reader, run, key, fold, options, callbacks=callbacks)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(run.checkpoint, ignore_errors=True)
    wait_for_workers(strategy)  # the others wait while the chief writes
    if options.verbose:
        print(summary.line(), file=sys.stderr)
    refit = summary.counts_refit
    if refit is not None and not refit["beats_constant"]:
        print(f"warning: {final.name} predicts validation peaks' log counts no better than their training mean "
              f"(MSE {refit['val_peaks_mse']:.4g} vs {refit['val_peaks_mse_constant']:.4g}); its counts "
              "predictions carry no information beyond the mean. More training peaks or epochs may help.",
              file=sys.stderr)
    return summary
