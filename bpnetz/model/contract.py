"""The model contract in one place: a BPNet model's inputs and outputs, how its tracks group into tasks, the one
length check against a store, and the model directory ``bpnetz train`` writes and every later command reads.

**I/O contract.** Inputs ``sequence`` one-hot (B, input_len, 4) [+ ``profile_bias`` (B, output_len, bias
tracks), ``counts_bias`` (B, bias tracks)]; outputs ``profile`` logits (B, output_len, tracks) and ``logcounts``
(B, tasks), or (B, tracks) when the model predicts one log count per track (the reference's
``orig_multi_loss``). Whether a model does is read from the width of its ``logcounts`` output by
:func:`counts_per_track` (the one rule; with as many tasks as tracks both readings are the same model).

**Track groups.** :class:`TrackGroups` is the one grouping of signal tracks: each task's tracks in layout order
(a track belongs to task ``Track.task``, :meth:`~bpnetz.store.schema.StoreLayout.task_tracks`); the softmax
groups (per task, or per track with per-track counts), the log-count columns of each task, and the group owning
each track are all derived from it, for the model builder, the losses, the metrics and prediction alike.

**Model directory** ``<output_dir>/<model_name>_split<NNN>/`` (fold key "0" -> ``split000``): ``model.keras``,
``bpnet_params.json``, ``splits.json`` (the fold, or folds keyed "0", … picked by the ``_splitNNN`` suffix),
``history.csv`` / ``history.json``, ``store.json`` (``path``, ``checksum``, ``n_loci``, ``layout`` of the training
store), ``training.json`` (options and summary), TensorBoard ``logs/``, ``learning_curves.png``, and bpnetz's
output marker. It is written into a fresh temporary directory under the directory's lock and swapped in when
complete (:func:`bpnetz.files.atomic.output_directory`), so a model directory is never half-written and a second
training into it fails at once instead of losing the first's model. This module imports no TensorFlow: reading a
directory and checking a model's shapes against a store must not pay its import.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bpnetz.config import Split, Splits, read_json
from bpnetz.errors import InputError
from bpnetz.files.names import safe_name
from bpnetz.files.remote import is_url
from bpnetz.store.schema import StoreLayout

MODEL_FILE = "model.keras"
PARAMS_FILE = "bpnet_params.json"
SPLITS_FILE = "splits.json"
STORE_RECORD = "store.json"
TRAINING_RECORD = "training.json"
HISTORY_CSV = "history.csv"
HISTORY_JSON = "history.json"


# ------------------------------------------------------------------------------------------------ track groups


@dataclass(frozen=True)
class TrackGroups:
    """Each task's signal track indices, and whether the model predicts one log count per track."""

    tasks: tuple[tuple[int, ...], ...]
    per_track: bool = False

    @classmethod
    def of(cls, layout: StoreLayout, per_track: bool = False) -> TrackGroups:
        return cls(tuple(tuple(layout.task_tracks(t)) for t in range(len(layout.tasks))), bool(per_track))

    @classmethod
    def from_lists(cls, task_tracks: Sequence[Sequence[int]], per_track: bool = False) -> TrackGroups:
        """From plain nested lists (a Keras loss' or model's saved config)."""
        return cls(tuple(tuple(int(i) for i in tracks) for tracks in task_tracks), bool(per_track))

    @property
    def n_tracks(self) -> int:
        return sum(len(tracks) for tracks in self.tasks)

    def task_lists(self) -> list[list[int]]:
        """Each task's tracks as plain lists (JSON-serializable, safe to close over in a graph)."""
        return [list(tracks) for tracks in self.tasks]

    def softmax(self) -> list[list[int]]:
        """Tracks sharing one softmax and one log count: per task, or one group per track (layout order)."""
        if self.per_track:
            return [[i] for i in range(self.n_tracks)]
        return self.task_lists()

    def count_columns(self) -> list[list[int]]:
        """Each task's columns of the ``logcounts`` output: ``[t]``, or the task's tracks with per-track counts."""
        return self.task_lists() if self.per_track else [[t] for t in range(len(self.tasks))]

    def owner(self) -> np.ndarray:
        """The softmax group of each track (n_tracks,)."""
        owner = np.empty(self.n_tracks, dtype=np.int64)
        for g, tracks in enumerate(self.softmax()):
            owner[list(tracks)] = g
        return owner

    def names(self, layout: StoreLayout) -> list[str]:
        """A name per softmax group: the track's with per-track counts, else the task's."""
        return [layout.tracks[g[0]].name for g in self.softmax()] if self.per_track else list(layout.tasks)

    def pseudocounts(self) -> list[float]:
        """Pseudocount in each log-count target column: the task's track count, or 1 per track."""
        return [1.0] * self.n_tracks if self.per_track else [float(len(tracks)) for tracks in self.tasks]


# ------------------------------------------------------------------------------------------------ shapes


def check_lengths(layout: StoreLayout, input_len: int, output_len: int, *, who: str,
                  names: tuple[str, str] = ("input length", "output length"), where: str | Path | None = None,
                  fix: str | None = None) -> None:
    """The one length check: ``who`` (a model, params, a command line) must read the store's windows."""
    if (input_len, output_len) == (layout.input_len, layout.output_len):
        return
    raise InputError(f"{who} takes {input_len} bases and predicts {output_len} positions ({names[0]} {input_len}, "
                     f"{names[1]} {output_len}), but the store holds windows of {layout.input_len} and "
                     f"{layout.output_len} ({names[0]} {layout.input_len}, {names[1]} {layout.output_len}).",
                     path=where, fix=fix or "Use the store the model was trained on, or rebuild one with "
                                            f"'bpnetz build --input-seq-len {input_len} --output-len {output_len}'.")


def counts_per_track(n_logcounts: int, layout: StoreLayout, where: str | Path | None = None) -> bool:
    """The one rule deriving ``orig_multi_loss`` from a model: it predicts one log count per track (not per
    task). Raises when the width is neither (the model was not trained on this track structure)."""
    n_tasks = len(layout.tasks)
    if n_logcounts not in (n_tasks, layout.n_tracks):
        raise InputError(f"the model predicts {n_logcounts} log counts, neither one per task ({n_tasks}) "
                         f"nor one per track ({layout.n_tracks}).", path=where,
                         fix="Use the store (or input_data.json) the model was trained with.")
    return n_logcounts == layout.n_tracks and n_logcounts != n_tasks


@dataclass(frozen=True)
class ModelShape:
    """Input/output shapes of a BPNet model (the model I/O contract)."""

    input_len: int
    output_len: int
    n_tracks: int
    n_logcounts: int
    n_bias: int | None  # None: no bias inputs

    @classmethod
    def of(cls, model: Any) -> ModelShape:
        inputs, outputs = model.input, model.output
        if not isinstance(inputs, dict) or "sequence" not in inputs or not isinstance(outputs, dict) \
                or not {"profile", "logcounts"} <= set(outputs):
            raise InputError("the model does not follow the bpnetz I/O contract (inputs 'sequence' [+ "
                             "'profile_bias', 'counts_bias'], outputs 'profile' and 'logcounts').",
                             fix="Use a model trained with 'bpnetz train'.")
        bias = inputs.get("profile_bias")
        return cls(input_len=int(inputs["sequence"].shape[1]), output_len=int(outputs["profile"].shape[1]),
                   n_tracks=int(outputs["profile"].shape[2]), n_logcounts=int(outputs["logcounts"].shape[1]),
                   n_bias=None if bias is None else int(bias.shape[2]))


def check_model_matches(shape: ModelShape, layout: StoreLayout, where: str | Path,
                        orig_multi_loss: bool | None) -> bool:
    """Raise when the model cannot read this store's windows; returns whether log counts are per track."""
    fix = ("Use the store the model was trained on (its store.json), or one built with 'bpnetz build "
           f"--input-seq-len {shape.input_len} --output-len {shape.output_len}' from the same input_data.json.")
    check_lengths(layout, shape.input_len, shape.output_len, who="the model", where=where, fix=fix)
    if shape.n_tracks != layout.n_tracks:
        raise InputError(f"the model predicts {shape.n_tracks} tracks, the store holds {layout.n_tracks} "
                         f"({', '.join(t.name for t in layout.tracks)}).", path=where, fix=fix)
    if (shape.n_bias or 0) != layout.n_bias:
        raise InputError(f"the model takes {shape.n_bias or 0} bias tracks, the store holds {layout.n_bias}.",
                         path=where, fix=fix)
    per_track = counts_per_track(shape.n_logcounts, layout, where)
    if orig_multi_loss is not None and orig_multi_loss != per_track and len(layout.tasks) != layout.n_tracks:
        raise InputError(f"--orig-multi-loss is {'on' if orig_multi_loss else 'off'}, but the model predicts "
                         f"{shape.n_logcounts} log counts ({'per track' if per_track else 'per task'}).",
                         fix="Drop --orig-multi-loss: it is read from the model.")
    return per_track


# ------------------------------------------------------------------------------------------ the model directory


def model_dir_name(model_name: str, fold: str, *, source: object = "splits.json") -> str:
    """``<model_name>_split000`` for fold "0" (the reference's naming); non-numeric keys are used as they are.

    Both names become a directory name: they are checked by :func:`~bpnetz.files.names.safe_name` (a fold key
    ``/../../x`` of ``source`` is an InputError, never a directory outside the output directory).
    """
    safe_name(model_name, what="model name", source="--model-name")
    safe_name(fold, what="fold key", source=source)
    return f"{model_name}_split{int(fold):03d}" if fold.isdigit() else f"{model_name}_split{fold}"


@dataclass
class ModelDir:
    """What ``bpnetz train`` left in a model directory: the model file, its fold and its store record."""

    path: Path
    model_file: Path
    name: str
    split: Split | None
    store_record: dict[str, Any]

    @classmethod
    def open(cls, path: str | Path) -> ModelDir:
        """Check and read a model directory (or a ``.keras`` file inside one)."""
        path = Path(path)
        if path.is_file():
            model_file, directory = path, path.parent
        else:
            model_file, directory = path / MODEL_FILE, path
        fix = "Point --model to a model directory written by 'bpnetz train' (e.g. models/model_split000)."
        if not directory.is_dir():
            raise InputError("the model directory does not exist.", path=directory, fix=fix)
        if not model_file.is_file():
            present = ", ".join(sorted(p.name for p in directory.iterdir())[:8]) or "nothing"
            raise InputError(f"the model directory has no {MODEL_FILE} (it holds {present}).", path=directory,
                             fix=fix)
        splits = directory / SPLITS_FILE
        record = directory / STORE_RECORD
        return cls(path=directory, model_file=model_file, name=directory.name.split(".")[0],
                   split=read_model_split(splits, directory.name) if splits.is_file() else None,
                   store_record=read_store_record(record) if record.is_file() else {})

    def recorded_layout(self) -> StoreLayout | None:
        """The layout of the store the model was trained on, from ``store.json``."""
        layout = self.store_record.get("layout")
        return StoreLayout.from_dict(layout) if layout else None

    def recorded_store(self) -> str | Path | None:
        """The store the model was trained on, when ``store.json`` names one: a Path, or a URL kept as text."""
        from bpnetz.files.remote import is_url

        value = self.store_record.get("path") or self.store_record.get("store")
        if not value:
            return None
        return str(value) if is_url(value) else Path(value)


def read_model_split(path: Path, model_name: str) -> Split:
    """The fold of a model: a single fold object, or folds keyed "0", … picked by the ``_splitNNN`` suffix."""
    from pydantic import ValidationError

    raw = read_json(path)
    if isinstance(raw, dict) and "val" in raw:
        try:
            return Split.model_validate(raw)
        except ValidationError as err:
            first = err.errors()[0]
            raise InputError(f"key {'.'.join(map(str, first['loc']))}: {first['msg']}.", path=path,
                             fix="A split is {\"val\": [...], \"test\": [...], \"train\": [...]}.") from None
    folds = Splits.load(path).folds
    match = re.search(r"_split(\d+)$", model_name)
    key = str(int(match.group(1))) if match else None
    if len(folds) == 1:
        return next(iter(folds.values()))
    if key in folds:
        return folds[key]
    raise InputError(f"holds folds {', '.join(folds)} and the model directory name {model_name!r} does not say "
                     "which one is this model's.", path=path, fix="Pass --chroms, or --split all.")


def read_store_record(path: Path) -> dict[str, Any]:
    """``store.json``: the training store's path, checksum and layout."""
    record = read_json(path)
    if not isinstance(record, dict):
        raise InputError("expected an object with the store's path, checksum and layout.", path=path,
                         fix="Retrain, or pass --store explicitly.")
    return record


def _history_rows(history: Mapping[str, Sequence[float]]) -> tuple[list[str], list[list[float]]]:
    keys = sorted(history, key=lambda k: (k.startswith("val_"), k))
    n = max((len(v) for v in history.values()), default=0)
    return ["epoch", *keys], [[i + 1, *(float(history[k][i]) for k in keys)] for i in range(n)]


def write_history(history: Mapping[str, Sequence[float]], directory: Path) -> None:
    """history.csv (one row per epoch) and history.json (lists per metric)."""
    header, rows = _history_rows(history)
    lines = [",".join(header)] + [",".join(f"{int(r[0])}" if i == 0 else repr(v) for i, v in enumerate(r))
                                  for r in rows]
    (directory / HISTORY_CSV).write_text("\n".join(lines) + "\n")
    (directory / HISTORY_JSON).write_text(json.dumps({k: [float(x) for x in v] for k, v in history.items()},
                                                     indent=1))


def write_fold_records(directory: Path, key: str, fold: Split, params_json: str, reader: Any) -> None:
    """``bpnet_params.json``, ``splits.json`` (the fold under its key) and ``store.json`` (the store's identity:
    ``reader`` is a :class:`~bpnetz.store.reader.StoreReader`)."""
    (directory / PARAMS_FILE).write_text(params_json + "\n")
    (directory / SPLITS_FILE).write_text(json.dumps({key: fold.model_dump()}, indent=2) + "\n")
    (directory / STORE_RECORD).write_text(json.dumps({
        "path": reader.path if is_url(reader.path) else str(Path(reader.path).resolve()),
        "checksum": reader.meta.get("checksum"), "n_loci": reader.n_loci, "layout": reader.layout.to_dict()},
        indent=2) + "\n")


def write_training_record(directory: Path, options: Mapping[str, Any], summary: Mapping[str, Any]) -> None:
    """``training.json``: the training options and the summary of the run."""
    (directory / TRAINING_RECORD).write_text(json.dumps({"options": dict(options), "summary": dict(summary)},
                                                        indent=2) + "\n")
