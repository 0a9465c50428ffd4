"""One stage of one experiment, run on a Dask worker: key, cache check, the CLI in a fresh subprocess, record.

:func:`plan_experiment` turns an :class:`~bpnetz.batch.manifest.Experiment` into :class:`StageTask` objects
(commands, key inputs, outputs); :func:`run_stage` runs one of them. Each command is ``python -m bpnetz <stage>
…`` in its own process: TensorFlow's graph, threads and GPU memory end with it (measured on the 2-core test
machine: 6–10 s of the 25–50 s of a tiny train/predict/shap stage is that start-up, the price of isolation).

Outcomes: ``done`` (ran and recorded), ``cached`` (key unchanged, outputs verified), ``failed`` (the command
exited with status 2: its one-paragraph error is recorded and returned), ``skipped`` (a stage it needs did not
finish). Any other exit status raises :class:`StageCrashed` after recording the failure, so Dask retries the
stage (as it does when the worker itself is lost).

A stage's outputs are removed before its command runs, except the build's ``store.zarr.partial``: the builder
resumes a partial store of the same build and starts one of other inputs over, so a build killed midway
continues where it stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bpnetz.batch.manifest import Experiment
from bpnetz.batch.records import (
    input_checksums,
    mark_running,
    outputs_verify,
    read_json,
    record_path,
    scan_outputs,
    stage_key,
    write_failure,
    write_record,
)
from bpnetz.errors import InputError

LOGS = "logs"


class StageCrashed(RuntimeError):
    """A stage's command died (not an input error): retried by Dask, then reported as failed."""

    def __init__(self, experiment: str, stage: str, message: str):
        super().__init__(message)
        self.experiment, self.stage = experiment, stage


@dataclass(frozen=True)
class StageTask:
    """Everything a worker needs to run one stage; ``commands`` are argument lists after ``python -m bpnetz``."""

    experiment: str
    stage: str
    root: Path
    cwd: Path
    commands: list[list[str]]
    outputs: list[str]
    inputs: list[Path] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    checksum_cache: Path | None = None  # input checksums remembered per unchanged file (None: re-read)


def model_dirs(splits: Path) -> list[str]:
    """The model directories ``bpnetz train`` writes for splits.json: ``model_split000`` for fold "0", …"""
    from bpnetz.config import Splits

    return [f"model_split{int(f):03d}" if f.isdigit() else f"model_split{f}" for f in Splits.load(splits).folds]


def input_data_files(input_data: Path) -> list[Path]:
    """input_data.json and every file it names (relative to its folder, where the build runs)."""
    from bpnetz.config import InputData

    spec = InputData.load(input_data, check_files=False)
    return [input_data, *((input_data.parent / path).absolute() for _, path in spec.files())]


def build_task(exp: Experiment, store_root: Path, checksum_cache: Path) -> StageTask:
    """The build of ``exp``'s store into ``store_root/store.zarr`` (shared by experiments with the same inputs)."""
    input_data = exp.input_data or store_root / "input_data.json"
    command = ["build", "--input-data", str(input_data), "--reference-genome", str(exp.genome), "--chrom-sizes",
               str(exp.chrom_sizes), "--input-seq-len", str(exp.input_len), "--output-len", str(exp.output_len),
               "--max-jitter", str(exp.max_jitter), "--output", str(store_root / "store.zarr"), "--quiet",
               # one process per build: the runner gives each build one CPU worker (a build's own default, a
               # process per core, would put cores² processes on the machine); a manifest's build args override it
               "--workers", "1", *exp.args.get("build", [])]
    return StageTask(exp.name, "build", store_root, input_data.parent, [command], ["store.zarr"],
                     inputs=[exp.genome, exp.chrom_sizes, input_data],
                     params={"lengths": [exp.input_len, exp.output_len, exp.max_jitter],
                             "args": exp.args.get("build", [])}, checksum_cache=checksum_cache)


def _per_model(folder: str, models: list[str]) -> list[tuple[str, str]]:
    """(model directory, output folder) per fold: ``folder`` for one fold, ``folder/<model>`` for several."""
    return [(f"models/{m}", folder if len(models) == 1 else f"{folder}/{m}") for m in models]


def experiment_tasks(exp: Experiment, root: Path, checksum_cache: Path) -> dict[str, StageTask]:
    """The stages after build of one experiment (those it asked for), run in ``root``."""
    models = model_dirs(exp.splits)
    store = str(root / "store.zarr")
    args = exp.args
    commands = {
        "train": [["train", "--store", store, "--params", str(exp.params), "--splits", str(exp.splits),
                   "--output-dir", "models", "--seed", str(exp.seed), "--quiet", *args.get("train", [])]],
        "predict": [["predict", "--model", m, "--store", store, "--split", "test", "--output-dir", out,
                     "--chrom-sizes", str(exp.chrom_sizes), "--quiet", *args.get("predict", [])]
                    for m, out in _per_model("pred", models)],
        "shap": [["shap", "--model", m, "--store", store, "--output-dir", out, "--quiet", *args.get("shap", [])]
                 for m, out in _per_model("shap", models)],
        "modisco": [["modisco", "--scores", f"{s}/counts_scores.h5", "--output-dir", out, *args.get("modisco", [])]
                    for (_, s), (_, out) in zip(_per_model("shap", models), _per_model("modisco", models))],
        "hits": [["hits", "--modisco", f"{m}/modisco_results.h5", "--scores", f"{s}/counts_scores.h5",
                  "--output-dir", out, *args.get("hits", [])]
                 for (_, s), (_, m), (_, out) in zip(_per_model("shap", models),
                                                     _per_model("modisco", models),
                                                     _per_model("hits", models))],
    }
    inputs = {"train": [exp.params, exp.splits], "predict": [exp.chrom_sizes]}
    folders = {"train": "models", "predict": "pred", "shap": "shap", "modisco": "modisco", "hits": "hits"}
    return {stage: StageTask(exp.name, stage, root, root, commands[stage], [folders[stage]],
                             inputs=inputs.get(stage, []),
                             params={"seed": exp.seed, "args": args.get(stage, [])} if stage == "train" else
                             {"args": args.get(stage, [])}, checksum_cache=checksum_cache)
            for stage in exp.stages if stage != "build"}


def _outcome(task: StageTask, status: str, key: str = "", seconds: float = 0.0, error: str = "") -> dict[str, Any]:
    return {"experiment": task.experiment, "stage": task.stage, "root": str(task.root), "status": status,
            "key": key, "seconds": round(seconds, 2), "error": error, "worker": _worker_name()}


def _key(task: StageTask, upstream: tuple[dict[str, Any], ...]) -> str:
    """The stage key: input checksums in order (a missing file counts as 'missing'), params, upstream keys."""
    paths = list(task.inputs)
    if task.stage == "build" and task.inputs[-1].is_file():  # a build's last input is input_data.json
        paths += input_data_files(task.inputs[-1])[1:]
    sums = input_checksums([p for p in paths if p.is_file()], task.checksum_cache)
    parts = {"inputs": [sums.get(str(p), "missing") for p in paths], "params": task.params,
             "upstream": [u["key"] for u in upstream]}
    return stage_key(task.stage, parts)


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def _error_paragraph(stderr: str) -> str:
    """The CLI's one-paragraph error (from the last line starting with 'error:' to the end)."""
    lines = stderr.rstrip().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("error:")]
    return " ".join(lines[starts[-1]:])[len("error:"):].strip() if starts else ""


def _run_commands(task: StageTask, log: Path) -> tuple[int, str]:
    """Run the stage's commands in order into ``log``; the first non-zero exit status and its stderr."""
    env = {**os.environ, "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        for command in task.commands:
            handle.write(f"$ bpnetz {' '.join(command)}\n")
            handle.flush()
            proc = subprocess.run([sys.executable, "-m", "bpnetz", *command], cwd=task.cwd, env=env, check=False,
                                  stdout=handle, stderr=subprocess.PIPE, text=True)
            handle.write(proc.stderr)
            if proc.returncode != 0:
                return proc.returncode, proc.stderr
    return 0, ""


def _clear_outputs(task: StageTask) -> None:
    for name in task.outputs:
        path = task.root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def run_stage(task: StageTask, *upstream: dict[str, Any]) -> dict[str, Any]:
    """Run (or skip, when cached) one stage after the stages it needs (their outcomes are ``upstream``)."""
    blocked = [u for u in upstream if u["status"] in ("failed", "skipped")]
    if blocked:
        return _outcome(task, "skipped", error=f"{blocked[0]['stage']} did not finish")
    try:
        key = _key(task, upstream)
    except InputError as err:
        write_failure(task.root, task.stage, "", str(err), None)
        return _outcome(task, "failed", error=str(err))
    record = read_json(record_path(task.root, task.stage))
    if record and record.get("key") == key and outputs_verify(task.root, record.get("outputs", {})):
        return _outcome(task, "cached", key, record.get("seconds", 0.0))
    _clear_outputs(task)
    worker = _worker_name()
    mark_running(task.root, task.stage, worker)
    log = task.root / LOGS / f"{task.stage}.log"
    started = time.perf_counter()
    status, stderr = _run_commands(task, log)
    seconds = time.perf_counter() - started
    if status == 2 and _error_paragraph(stderr):
        write_failure(task.root, task.stage, key, _error_paragraph(stderr), log)
        return _outcome(task, "failed", key, seconds, _error_paragraph(stderr))
    if status != 0:
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        message = f"'bpnetz {task.stage}' exited with status {status} (see {log}): {tail}"
        write_failure(task.root, task.stage, key, message, log)
        raise StageCrashed(task.experiment, task.stage, message)
    write_record(task.root, task.stage, {"stage": task.stage, "experiment": task.experiment, "key": key,
                                         "seconds": round(seconds, 2), "finished": time.time(), "worker": worker,
                                         "commands": task.commands, "outputs": scan_outputs(task.root, task.outputs)})
    return _outcome(task, "done", key, seconds)


def write_input_data(exp: Experiment, path: Path) -> Path:
    """input_data.json (absolute paths, one task) for an experiment given as bigWigs + peaks."""
    task: dict[str, Any] = {"signal": {"source": [str(p) for p in exp.tracks["signal"]]},
                            "loci": {"source": [str(p) for p in exp.tracks["peaks"]]}}
    if exp.tracks.get("background"):
        task["background_loci"] = {"source": [str(p) for p in exp.tracks["background"]]}
    if exp.tracks.get("bias"):
        task["bias"] = {"source": [str(p) for p in exp.tracks["bias"]]}
    text = json.dumps({"0": task}, indent=2) + "\n"
    if not path.is_file() or path.read_text() != text:
        from bpnetz.files.atomic import write_text

        write_text(path, text)
    return path
