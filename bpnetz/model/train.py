"""Train BPNet models from a store: one model per splits.json fold, the best weights (by validation loss) kept.

Each model directory ``<output_dir>/<model_name>_split<NNN>/`` (fold key "0" -> ``split000``) holds
``model.keras`` (loadable with ``keras.models.load_model`` once :mod:`bpnetz.model.registry` is imported),
``bpnet_params.json``, ``splits.json`` (the fold, training chromosomes resolved), ``history.csv`` and
``history.json``, TensorBoard ``logs/``, ``learning_curves.png``, ``store.json`` (store path, checksum and layout)
and ``training.json`` (the training options and a summary). A directory is written under ``<dir>.partial`` and
renamed when the model is complete, so a model directory is never half-written.

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
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bpnetz.config import BpnetParams, Split, Splits
from bpnetz.errors import InputError
from bpnetz.store import schema
from bpnetz.store.loader import LocusStream, StoreReader

MODEL_FILE = "model.keras"
DEFAULT_SEED = 1234
#: training loci the counts head is calibrated on before training (see bpnet.calibrate_counts_head)
CALIBRATION_LOCI = 2048


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

    def line(self) -> str:
        parts = [f"{Path(self.model_dir).name}: best epoch {self.best_epoch}/{self.epochs_run}, "
                 f"val loss {self.best_val_loss:.4g}"]
        if self.best_val_profile_loss is not None and self.best_val_logcounts_loss is not None:
            parts.append(f" (profile {self.best_val_profile_loss:.4g}, counts {self.best_val_logcounts_loss:.4g})")
        if self.counts_refit is not None:
            from bpnetz.model.counts_head import describe

            parts.append(f"; {describe(self.counts_refit)}")
        parts.append(f", {self.seconds:.0f} s, {self.train_examples_per_second:,.0f} training examples/s")
        return "".join(parts)


def model_dir_name(model_name: str, fold: str) -> str:
    """``<model_name>_split000`` for fold "0" (the reference's naming); non-numeric keys are used as they are."""
    return f"{model_name}_split{int(fold):03d}" if fold.isdigit() else f"{model_name}_split{fold}"


def check_model_lengths(params: BpnetParams, store_layout: schema.StoreLayout, *, input_len: int | None = None,
                        output_len: int | None = None, params_path: str = "bpnet_params.json") -> None:
    """Clear errors when the params' or the command line's lengths disagree with the store's."""
    schema.check_lengths(store_layout, params.input_len, params.output_profile_len, where=params_path)
    for name, given, wanted in (("--input-seq-len", input_len, params.input_len),
                                ("--output-len", output_len, params.output_profile_len)):
        if given is not None and given != wanted:
            raise InputError(f"{name} {given} disagrees with {params_path} ({wanted}) and the store.",
                             fix=f"Drop {name} or set it to {wanted}.")


# ------------------------------------------------------------------------------------------------ callbacks


def _callbacks_module() -> Any:
    import keras

    class KeepBestWeights(keras.callbacks.Callback):
        """Remember the weights of the epoch with the lowest ``monitor`` and put them back at the end."""

        def __init__(self, monitor: str = "val_loss"):
            super().__init__()
            self.monitor = monitor
            self.best = math.inf
            self.best_epoch = -1
            self.best_weights: list[np.ndarray] | None = None

        def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
            value = (logs or {}).get(self.monitor)
            if value is not None and value < self.best:
                self.best, self.best_epoch, self.best_weights = float(value), epoch, self.model.get_weights()

        def on_train_end(self, logs: Mapping[str, float] | None = None) -> None:
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    class TrainingTime(keras.callbacks.Callback):
        """Seconds spent in training batches (validation excluded), for examples/s."""

        def __init__(self) -> None:
            super().__init__()
            self.seconds = 0.0
            self._began = 0.0
            self._last = 0.0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._began = self._last = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self._last = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.seconds += self._last - self._began

    class EpochScalars(keras.callbacks.Callback):
        """TensorBoard scalars per epoch under ``logs/train`` and ``logs/validation`` (tags ``epoch_<metric>``).

        Written with TensorFlow's own summary ops, so the tensorboard package is not needed to write them.
        """

        def __init__(self, log_dir: Path):
            super().__init__()
            import tensorflow as tf

            self._tf = tf
            self._metadata = tf.compat.v1.SummaryMetadata(
                plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars"))
            self._writers = {name: tf.summary.create_file_writer(str(log_dir / name))
                             for name in ("train", "validation")}

        def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
            for key, value in (logs or {}).items():
                writer = self._writers["validation" if key.startswith("val_") else "train"]
                with writer.as_default():
                    self._tf.summary.write(f"epoch_{key.removeprefix('val_')}", float(value), step=epoch,
                                           metadata=self._metadata)

        def on_train_end(self, logs: Any = None) -> None:
            for writer in self._writers.values():
                writer.close()

    return KeepBestWeights, TrainingTime, EpochScalars


# ------------------------------------------------------------------------------------------------- training


def _strategy() -> Any:
    """MirroredStrategy over all visible GPUs when there are several, else the default strategy."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def _set_threads(threads: int | None) -> None:
    import tensorflow as tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # TensorFlow already initialised in this process
            pass


def _history_rows(history: Mapping[str, Sequence[float]]) -> tuple[list[str], list[list[float]]]:
    keys = sorted(history, key=lambda k: (k.startswith("val_"), k))
    n = max((len(v) for v in history.values()), default=0)
    return ["epoch", *keys], [[i + 1, *(float(history[k][i]) for k in keys)] for i in range(n)]


def write_history(history: Mapping[str, Sequence[float]], directory: Path) -> None:
    """history.csv (one row per epoch) and history.json (lists per metric)."""
    header, rows = _history_rows(history)
    lines = [",".join(header)] + [",".join(f"{int(r[0])}" if i == 0 else repr(v) for i, v in enumerate(r))
                                  for r in rows]
    (directory / "history.csv").write_text("\n".join(lines) + "\n")
    (directory / "history.json").write_text(json.dumps({k: [float(x) for x in v] for k, v in history.items()},
                                                       indent=1))


def _replace_dir(partial: Path, final: Path) -> None:
    """Move a finished model directory into place, replacing an older one."""
    if final.exists():
        print(f"notice: replacing the existing {final}", file=sys.stderr)
        old = final.with_name(final.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        final.replace(old)
        partial.replace(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        partial.replace(final)


def train(store: str | Path, params: BpnetParams, splits: Splits, output_dir: str | Path, *,
          model_name: str = "model", chroms: Sequence[str] | None = None, epochs: int = 100, batch_size: int = 64,
          learning_rate: float = 0.004, min_learning_rate: float = 1e-4, early_stopping_patience: int = 5,
          early_stopping_min_delta: float = 1e-3, reduce_lr_on_plateau_patience: int = 2,
          lr_reduction_factor: float = 0.5, reverse_complement: str = "random", shuffle: bool = True,
          mnll_loss_sample_weight: float = 1.0, mnll_loss_background_sample_weight: float = 0.0,
          orig_multi_loss: bool = False, refit_counts_head: bool = True, mixed_precision: bool = False,
          xla: bool = False, seed: int = DEFAULT_SEED, cache: bool | str = "auto", threads: int | None = None,
          input_len: int | None = None, output_len: int | None = None, folds: Sequence[str] | None = None,
          params_path: str = "bpnet_params.json", verbose: int = 1, callbacks: Sequence[Any] = ()) -> list[Path]:
    """Train one model per fold of ``splits`` (or the given ``folds`` keys); returns the model directories.

    ``chroms`` are all chromosomes considered (training = chroms minus val and test when a fold has no "train";
    default: the store's). ``reverse_complement``: "random" (flip each example with p = 0.5), "double" (the
    reference's doubled batches) or "none". ``cache``: "auto", True (RAM) or False (stream from disk).
    ``refit_counts_head``: after training, set the counts output to the trained head or a ridge refit of its last
    layer, calibrated on validation peaks, whichever predicts validation peaks best (MSE counts loss only; see
    :mod:`bpnetz.model.counts_head`). Either way the summary reports the validation-peak log-count MSE beside
    the constant predictor's, with a warning when the model does not beat it.
    ``input_len``/``output_len``, when given (command line), must match the params and the store. ``callbacks``
    are extra Keras callbacks. ``verbose``: 0 silent, 1 Keras progress bars and summaries, 2 one line per epoch.
    """
    _set_threads(threads)
    reader = StoreReader(store)
    check_model_lengths(params, reader.layout, input_len=input_len, output_len=output_len, params_path=params_path)
    keys = list(folds) if folds is not None else list(splits.folds)
    missing = [k for k in keys if k not in splits.folds]
    if missing:
        raise InputError(f"no fold {', '.join(missing)} in splits.json (folds: {', '.join(splits.folds)}).")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    options = dict(model_name=model_name, chroms=list(chroms) if chroms else None, epochs=epochs,
                   batch_size=batch_size, learning_rate=learning_rate, min_learning_rate=min_learning_rate,
                   early_stopping_patience=early_stopping_patience, early_stopping_min_delta=early_stopping_min_delta,
                   reduce_lr_on_plateau_patience=reduce_lr_on_plateau_patience,
                   lr_reduction_factor=lr_reduction_factor, reverse_complement=reverse_complement, shuffle=shuffle,
                   mnll_loss_sample_weight=mnll_loss_sample_weight,
                   mnll_loss_background_sample_weight=mnll_loss_background_sample_weight,
                   orig_multi_loss=orig_multi_loss, refit_counts_head=refit_counts_head,
                   mixed_precision=mixed_precision, xla=xla, seed=seed, cache=cache)
    made = []
    summaries = []
    for key in keys:
        summary = _train_fold(reader, params, key, splits.folds[key], output_dir, options, verbose=verbose,
                              callbacks=callbacks)
        summaries.append(summary)
        made.append(Path(summary.model_dir))
    if verbose and len(summaries) > 1:
        print("\n".join(summary.line() for summary in summaries), file=sys.stderr)
    return made


def _fold_streams(reader: StoreReader, key: str, fold: Split, options: dict[str, Any],
                  verbose: int) -> tuple[LocusStream, LocusStream]:
    """The training stream (augmented, shuffled, backgrounds redrawn per epoch) and the fixed validation one."""
    common = dict(batch_size=options["batch_size"], all_chroms=options["chroms"], seed=options["seed"],
                  mnll_loss_sample_weight=options["mnll_loss_sample_weight"],
                  mnll_background_weight=options["mnll_loss_background_sample_weight"],
                  orig_multi_loss=options["orig_multi_loss"], cache=options["cache"], progress=bool(verbose))
    train_stream = LocusStream(reader, fold, "train", reverse_complement=options["reverse_complement"],
                               shuffle=options["shuffle"], **common)
    val_stream = LocusStream(reader, fold, "val", **common)
    if verbose:
        print(f"fold {key}: training on {', '.join(train_stream.selection.chroms)} "
              f"({train_stream.n_loci:,} loci per epoch, {len(train_stream.selection.peak_positions):,} peaks), "
              f"validating on {', '.join(val_stream.selection.chroms)} ({val_stream.n_loci:,} loci); "
              f"{'RAM-cached' if train_stream.cached else 'streamed from disk'}", file=sys.stderr)
    return train_stream, val_stream


def _fit(directory: Path, params: BpnetParams, store_layout: schema.StoreLayout, train_stream: LocusStream,
         val_stream: LocusStream, options: dict[str, Any], *, verbose: int,
         callbacks: Sequence[Any]) -> tuple[dict[str, list[float]], int, float, dict[str, Any] | None]:
    """Build, compile and fit a model; save the best epoch's weights as ``directory/model.keras``.

    Returns the history, the best (0-based) epoch, the seconds spent in training batches and the counts-head
    refit's record (None when not tried).
    """
    import keras

    from bpnetz.model import registry  # noqa: F401  (registers the custom objects for saving/loading)
    from bpnetz.model.bpnet import (
        build_model,
        calibrate_counts_head,
        compile_model,
        task_track_indices,
    )

    keras.utils.set_random_seed(options["seed"])
    previous_policy = keras.config.dtype_policy()
    if options["mixed_precision"]:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        with _strategy().scope():
            model = build_model(params, store_layout, orig_multi_loss=options["orig_multi_loss"])
            compile_model(model, params, learning_rate=options["learning_rate"],
                          task_tracks=task_track_indices(store_layout), orig_multi_loss=options["orig_multi_loss"],
                          jit_compile=bool(options["xla"]))
            calibration = itertools.islice(train_stream.dataset(), max(1, CALIBRATION_LOCI // options["batch_size"]))
            calibrate_counts_head(model, store_layout, calibration, orig_multi_loss=options["orig_multi_loss"])
            del calibration  # ends the half-read epoch now (its generator holds a pair of streamed-block buffers)
        keep_best_cls, timer_cls, scalars_cls = _callbacks_module()
        keep_best, timer = keep_best_cls("val_loss"), timer_cls()
        fit_callbacks = [
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=options["early_stopping_patience"],
                                          min_delta=options["early_stopping_min_delta"], verbose=int(bool(verbose))),
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=options["lr_reduction_factor"],
                                              patience=options["reduce_lr_on_plateau_patience"],
                                              min_lr=options["min_learning_rate"], verbose=int(bool(verbose))),
            scalars_cls(directory / "logs"), keep_best, timer, *callbacks,
        ]
        history = model.fit(train_stream.dataset(), validation_data=val_stream.dataset(),
                            epochs=options["epochs"], callbacks=fit_callbacks, verbose=verbose,
                            shuffle=False).history  # the stream shuffles itself
    finally:
        keras.config.set_dtype_policy(previous_policy)
    if options["mixed_precision"]:
        # Save a float32 twin (same weights, which mixed precision keeps in float32): it predicts and attributes
        # in full precision anywhere and loads without the loss-scaling optimizer's extra state.
        twin = build_model(params, store_layout, orig_multi_loss=options["orig_multi_loss"])
        twin.set_weights(model.get_weights())
        model = compile_model(twin, params, learning_rate=options["learning_rate"],
                              task_tracks=task_track_indices(store_layout),
                              orig_multi_loss=options["orig_multi_loss"])
        model.optimizer.build(model.trainable_variables)  # saved with (fresh) state, so it loads without warnings
    refit = _fit_counts_head(model, params, store_layout, train_stream, val_stream, options)
    model.save(directory / MODEL_FILE)
    return history, keep_best.best_epoch, timer.seconds, refit


def _fit_counts_head(model: Any, params: BpnetParams, store_layout: schema.StoreLayout, train_stream: LocusStream,
                     val_stream: LocusStream, options: dict[str, Any]) -> dict[str, Any] | None:
    """The counts head's choice and calibration on validation peaks (MSE counts loss and ``refit_counts_head``),
    or only its assessment; see :func:`bpnetz.model.counts_head.fit_counts_head`."""
    from bpnetz.model.counts_head import fit_counts_head

    peak_rows = train_stream.reader.loci["kind"].to_numpy() == schema.KIND_PEAK
    return fit_counts_head(model, store_layout, train_stream.dataset(with_index=True),
                           val_stream.dataset(with_index=True), peak_rows,
                           refit=options["refit_counts_head"] and params.counts_loss == "MSE",
                           orig_multi_loss=options["orig_multi_loss"])


def _write_records(directory: Path, key: str, fold: Split, params: BpnetParams, reader: StoreReader,
                   train_stream: LocusStream, history: dict[str, list[float]], best: int) -> None:
    """Everything beside the model: history, learning curves, params, the fold and the store's identity."""
    from bpnetz.model.plots import plot_learning_curves

    write_history(history, directory)
    plot_learning_curves(history, directory / "learning_curves.png", best_epoch=best if best >= 0 else None,
                         title=f"{directory.name.removesuffix('.partial')} (kept epoch {best + 1})")
    (directory / "bpnet_params.json").write_text(params.to_json() + "\n")
    resolved = fold.model_copy(update={"train": train_stream.selection.chroms})
    (directory / "splits.json").write_text(json.dumps({key: resolved.model_dump()}, indent=2) + "\n")
    (directory / "store.json").write_text(json.dumps({
        "path": str(Path(reader.path).resolve()), "checksum": reader.meta.get("checksum"),
        "n_loci": reader.n_loci, "layout": reader.layout.to_dict()}, indent=2) + "\n")


def _train_fold(reader: StoreReader, params: BpnetParams, key: str, fold: Split, output_dir: Path,
                options: dict[str, Any], *, verbose: int, callbacks: Sequence[Any]) -> TrainingSummary:
    """Train, save and describe one fold's model in ``<dir>.partial``, then move it into place."""
    began = time.perf_counter()
    final = output_dir / model_dir_name(options["model_name"], key)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    train_stream, val_stream = _fold_streams(reader, key, fold, options, verbose)
    history, best, train_seconds, refit = _fit(partial, params, reader.layout, train_stream, val_stream, options,
                                               verbose=verbose, callbacks=callbacks)
    _write_records(partial, key, fold, params, reader, train_stream, history, best)

    def at_best(name: str) -> float | None:
        values = history.get(name)
        return float(values[best]) if values and best >= 0 else None

    epochs_run = len(history.get("loss", []))
    val_loss = at_best("val_loss")
    summary = TrainingSummary(
        fold=key, model_dir=str(final), epochs_run=epochs_run, best_epoch=best + 1,
        best_val_loss=math.nan if val_loss is None else val_loss, best_val_profile_loss=at_best("val_profile_loss"),
        best_val_logcounts_loss=at_best("val_logcounts_loss"), train_loci_per_epoch=train_stream.n_examples,
        val_loci=val_stream.n_examples, seconds=time.perf_counter() - began,
        train_examples_per_second=train_stream.n_examples * epochs_run / max(train_seconds, 1e-9),
        counts_refit=refit)
    (partial / "training.json").write_text(json.dumps({"options": options, "summary": asdict(summary)},
                                                      indent=2) + "\n")
    _replace_dir(partial, final)
    if verbose:
        print(summary.line(), file=sys.stderr)
    if refit is not None and not refit["beats_constant"]:
        print(f"warning: {final.name} predicts validation peaks' log counts no better than their training mean "
              f"(MSE {refit['val_peaks_mse']:.4g} vs {refit['val_peaks_mse_constant']:.4g}); its counts "
              "predictions carry no information beyond the mean. More training peaks or epochs may help.",
              file=sys.stderr)
    return summary
