"""A trained model ready for in-silico experiments: batched predictions of one-hot sequences, with
reverse-complement averaging and the model's control (bias) inputs, and the per-task quantities derived from them.

The model is loaded with :func:`bpnetz.model.registry.load_model` and called in batches through prediction's
:func:`~bpnetz.predict.inference.model_predict_fn` (one traced graph for every batch size, cache-sized calls
without a GPU: :mod:`bpnetz.model.batching`); reverse-complement averaging is the
one helper of :mod:`bpnetz.predict.reverse_complement` (one call on the forward and reverse batches together).
The layout of the training store (tracks, tasks, controls) comes from the model directory's ``store.json``.

Controls: a model trained with bias inputs gets them either read from the control bigWigs over each output
window (raw and smoothed copies exactly as the store builder makes them, :func:`bpnetz.build.builder.bias_block`)
or, with ``zero_controls``, zeros (what the sequence alone predicts). A control bigWig that does not exist is an
InputError naming it and both fixes (``--input-data`` with the current paths, or ``--zero-controls``): a silent
fall-back to zeros would change every predicted count. Chromosomes a control lacks get zeros, with a notice.

Quantities (per task, from the joint softmax over the task's positions × tracks, as in prediction):
predicted counts (N, L, T) = softmax × exp(log count) (:func:`bpnetz.predict.metrics.predicted_counts`); the
DeepLIFT targets of :mod:`bpnetz.shap.deeplift` (``counts``: the task's log count, summed over its columns with
orig_multi_loss; ``profile``: Σ (z − mean z)·softmax(z) over the task's logits), so that ISM and DeepLIFT-SHAP
explain the same numbers.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import logsumexp

from bpnetz.errors import InputError, notice
from bpnetz.model.contract import MODEL_FILE, ModelDir, TrackGroups
from bpnetz.store.schema import StoreLayout

DEFAULT_BATCH = 128


@contextlib.contextmanager
def writing_to(output_dir: str | Path) -> Iterator[Path]:
    """Create the output directory and turn an OSError inside (a read-only or full disk, an unreadable file)
    into an InputError naming the file."""
    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        yield output_dir
    except OSError as err:
        raise InputError(f"cannot be read or written ({err.strerror or err}).", path=err.filename or output_dir,
                         fix="Outputs need a writable --output-dir with free space; inputs a readable file.") from None


@dataclass
class ModelSession:
    """A loaded model with its layout, how it reads controls, and whether predictions are strand-averaged."""

    model: Any
    layout: StoreLayout
    model_file: Path
    controls: dict[str, Any] | None  # open control bigWigs by path; None = zero bias inputs
    rc_average: bool = True
    batch_size: int = DEFAULT_BATCH

    @property
    def bias_inputs(self) -> list[str]:
        return [t.name for t in self.model.inputs if t.name != "sequence"]

    @property
    def per_track_counts(self) -> bool:
        """orig_multi_loss: one log count per track."""
        return int(self.model.output["logcounts"].shape[-1]) != len(self.layout.tasks)

    @property
    def input_len(self) -> int:
        return self.layout.input_len

    @property
    def output_len(self) -> int:
        return self.layout.output_len

    def close(self) -> None:
        for handle in (self.controls or {}).values():
            handle.close()
        self.controls = None

    def bias(self, chroms: Sequence[str], out_starts: np.ndarray) -> dict[str, np.ndarray]:
        """The model's bias inputs over output windows [out_start, out_start + output_len) (zeros without controls)."""
        n = len(out_starts)
        if not self.bias_inputs:
            return {}
        profile = np.zeros((n, self.output_len, self.layout.n_bias), dtype=np.float32)
        if self.controls is not None and n:
            from bpnetz.build.builder import bias_block

            chroms = np.asarray(chroms).astype(str)
            covered = set.intersection(*(set(h.chroms()) for h in self.controls.values()))
            inside = np.isin(chroms, sorted(covered))
            if not inside.all():
                lacking = sorted(set(chroms[~inside]))
                notice(f"the controls lack {', '.join(lacking[:5])}: bias inputs there are zero.")
            if inside.any():
                profile[inside], _ = bias_block(self.controls, self.layout.bias_tracks, chroms[inside].astype(object),
                                                np.asarray(out_starts)[inside], self.output_len)
        inputs = {"profile_bias": profile, "counts_bias": np.log1p(profile.sum(axis=1, dtype=np.float64))}
        return {name: inputs[name].astype(np.float32) for name in self.bias_inputs}

    def predict(self, onehot: np.ndarray, bias: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``profile`` logits (N, L, T) and ``logcounts`` of one-hot sequences (N, input_len, 4) with their bias
        inputs (:meth:`bias`, N rows), in batches."""
        from bpnetz.predict.reverse_complement import rc_average

        outputs: dict[str, list[np.ndarray]] = {"profile": [], "logcounts": []}
        for start in range(0, len(onehot), self.batch_size):
            batch = np.asarray(onehot[start:start + self.batch_size], dtype=np.float32)
            batch_bias = {k: v[start:start + self.batch_size] for k, v in bias.items()}
            if self.rc_average:
                result = rc_average(self._call, batch, batch_bias, self.layout)
            else:
                result = self._call({"sequence": batch, **batch_bias})
            for key, parts in outputs.items():
                parts.append(np.asarray(result[key], dtype=np.float64))
        return {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in outputs.items()}

    @functools.cached_property
    def _call(self) -> Any:
        """The model on a dict of numpy inputs (one traced graph, cache-sized calls)."""
        from bpnetz.predict.inference import model_predict_fn

        return model_predict_fn(self.model)

    def counts(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """Predicted counts (N, L, T): the joint softmax of each group × exp(its log count)."""
        from bpnetz.predict.metrics import predicted_counts

        groups = TrackGroups.of(self.layout, per_track=self.per_track_counts)
        return predicted_counts(outputs["profile"], outputs["logcounts"], groups.softmax())

    def targets(self, outputs: dict[str, np.ndarray], task: int) -> dict[str, np.ndarray]:
        """The DeepLIFT targets of one task (see the module docstring): {"counts": (N,), "profile": (N,)}."""
        tracks = self.layout.task_tracks(task)
        columns = tracks if self.per_track_counts else [task]
        logits = outputs["profile"][:, :, tracks].reshape(len(outputs["profile"]), -1)
        weights = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
        centred = logits - logits.mean(axis=1, keepdims=True)
        return {"counts": outputs["logcounts"][:, columns].sum(axis=1), "profile": (centred * weights).sum(axis=1)}


def open_session(model_dir: str | Path, *, input_data: str | Path | None = None, zero_controls: bool = False,
                 rc_average: bool = True, batch_size: int = DEFAULT_BATCH) -> ModelSession:
    """Load a model directory (or a model.keras inside one) and open its controls (see the module docstring)."""
    from bpnetz.model.registry import load_model
    from bpnetz.shap.contributions import control_layout

    directory = ModelDir.open(model_dir)
    recorded = directory.recorded_layout()
    if recorded is None:
        raise InputError("store.json holds no record of the training store's layout.", path=directory.path,
                         fix="Use a model directory written by 'bpnetz train'.")
    model = load_model(directory.model_file, compile=False)
    layout = control_layout(recorded, input_data)
    needs_bias = any(t.name != "sequence" for t in model.inputs)
    controls = None
    if needs_bias and not zero_controls and layout.bias_tracks:
        controls = _open_controls(layout)
    elif needs_bias:
        notice("bias (control) inputs are zero.")
    return ModelSession(model, layout, directory.path / MODEL_FILE, controls, rc_average, batch_size)


def _open_controls(layout: StoreLayout) -> dict[str, Any]:
    from bpnetz.genome.bigwig import open_bigwig

    missing = sorted({t.source for t in layout.bias_tracks if not Path(t.source).is_file()})
    if missing:
        raise InputError("the control bigWig the model was trained with does not exist.", path=missing[0],
                         fix="Pass --input-data with the experiment's input_data.json (paths relative to the current "
                             "directory), or --zero-controls to predict with zero bias inputs.")
    return {source: open_bigwig(source) for source in sorted({t.source for t in layout.bias_tracks})}
