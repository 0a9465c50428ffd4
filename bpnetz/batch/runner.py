"""Run a manifest of experiments on dask.distributed: one task per (experiment, stage), stores shared.

The engine is a ``LocalCluster`` started here, or an existing cluster joined with ``scheduler`` (e.g. one of
dask-jobqueue's Slurm clusters, see docs/atlas.md). The LocalCluster has single-threaded worker processes (a
stage is a subprocess, so a thread per worker suffices): on a machine with GPUs one worker per GPU (resource
``GPU=1``, ``CUDA_VISIBLE_DEVICES`` that device) plus CPU workers (``CPU=1``, no device); without GPUs one plain
worker per core. Where the cluster's workers advertise resources, stages ask for them: train, predict and shap
``GPU=1``; build, modisco and hits ``CPU=1`` — so a cluster of GPU and CPU workers places each stage where it
belongs, and a cluster without them (a CPU-only machine) runs every stage anywhere. Each task is retried ``retries``
times when its worker is lost or its command crashes.

Experiments whose build inputs are the same files with the same lengths share one build task and one store
(``<output-dir>/stores/<id>/store.zarr``; each experiment's ``store.zarr`` is a link to it), so the store's
content id is the same for all of them. Each experiment's directory has the layout of a single run:
``store.zarr``, ``models/``, ``pred/``, ``shap/``, ``modisco/``, ``hits/``, plus ``logs/`` and ``.batch/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bpnetz.batch.manifest import GPU_STAGES, UPSTREAM, Experiment, load_manifest
from bpnetz.batch.records import RECORDS
from bpnetz.batch.stages import StageCrashed, StageTask, build_task, experiment_tasks, run_stage, write_input_data
from bpnetz.files.atomic import write_text

STORES = "stores"


@dataclass
class BatchResult:
    """Outcomes of every stage of a run (see :func:`bpnetz.batch.stages.run_stage`) and where the run went."""

    output_dir: Path
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    dashboard: str = ""

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [o for o in self.outcomes if o["status"] == "failed"]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome["status"]] = counts.get(outcome["status"], 0) + 1
        text = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        lines = [f"batch: {len(self.outcomes)} stages in {self.seconds:.1f} s ({text}) -> {self.output_dir}"]
        for outcome in self.failed:
            lines.append(f"failed: {outcome['experiment']} {outcome['stage']}: {outcome['error']}")
        return "\n".join(lines)


def store_id(exp: Experiment) -> str:
    """Id of the build an experiment needs: its input files (by path), genome, sizes, lengths and build flags."""
    spec = {"input_data": str(exp.input_data) if exp.input_data else None,
            "tracks": {k: [str(p) for p in v] for k, v in sorted(exp.tracks.items())},
            "genome": str(exp.genome), "chrom_sizes": str(exp.chrom_sizes),
            "lengths": [exp.input_len, exp.output_len, exp.max_jitter], "args": exp.args.get("build", [])}
    return hashlib.blake2b(json.dumps(spec, sort_keys=True).encode(), digest_size=8).hexdigest()


def _link_store(root: Path, sid: str) -> None:
    link = root / "store.zarr"
    target = Path("..") / STORES / sid / "store.zarr"
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    if link.is_symlink() or link.is_file():
        link.unlink()
    link.symlink_to(target, target_is_directory=True)


def plan(experiments: list[Experiment], out: Path) -> tuple[dict[str, StageTask], dict[str, dict[str, StageTask]]]:
    """Build tasks by store id and every experiment's other stage tasks; creates the directories and links."""
    cache = out / RECORDS / "checksums.json"
    builds: dict[str, StageTask] = {}
    stages: dict[str, dict[str, StageTask]] = {}
    for exp in experiments:
        sid = store_id(exp)
        store_root = out / STORES / sid
        store_root.mkdir(parents=True, exist_ok=True)
        if exp.input_data is None:
            write_input_data(exp, store_root / "input_data.json")
        if sid not in builds:
            builds[sid] = replace(build_task(exp, store_root, cache), experiment=f"{STORES}/{sid}")
        root = out / exp.name
        root.mkdir(parents=True, exist_ok=True)
        _link_store(root, sid)
        stages[exp.name] = experiment_tasks(exp, root, cache)
    return builds, stages


def gpu_ids() -> list[str]:
    """This machine's GPUs: ``CUDA_VISIBLE_DEVICES`` when set, else ``nvidia-smi -L`` (none without it)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(ln for ln in listed.stdout.splitlines() if ln.startswith("GPU "))]


def _local_cluster(workers: int | None, gpus: int | None):
    """Single-threaded worker processes: one per GPU (``GPU=1``, that device only) and ``workers`` CPU ones
    (``CPU=1``, no device; default: the remaining cores). Without GPUs: ``workers`` (default one per core)
    plain workers, no resources, so every stage runs anywhere."""
    from distributed import LocalCluster

    devices = gpu_ids() if gpus is None else (gpu_ids() or [str(i) for i in range(gpus)])[:gpus]
    cores = os.cpu_count() or 1
    cluster = LocalCluster(n_workers=0, threads_per_worker=1, processes=True, dashboard_address=":0")
    if not devices:
        cluster.scale(workers or cores)
        return cluster, workers or cores
    n_cpu = workers or max(1, cores - len(devices))
    specs = {f"gpu{i}": ({"GPU": 1}, device) for i, device in enumerate(devices)}
    specs |= {f"cpu{i}": ({"CPU": 1}, "-1") for i in range(n_cpu)}
    for name, (resources, device) in specs.items():
        template = cluster.new_spec
        options = {**template["options"], "resources": resources, "env": {"CUDA_VISIBLE_DEVICES": device}}
        cluster.worker_spec[name] = {**template, "options": options}
    cluster.sync(cluster._correct_state)
    return cluster, len(specs)


def _client(scheduler: str | None, workers: int | None, gpus: int | None):
    """A Client of the given scheduler, or of a new LocalCluster (:func:`_local_cluster`)."""
    from distributed import Client

    if scheduler:
        return Client(scheduler, timeout="60s")
    cluster, n = _local_cluster(workers, gpus)
    client = Client(cluster)
    client.wait_for_workers(n, timeout=120)
    return client


def _resources(client) -> Callable[[str], dict[str, float] | None]:
    """Per stage, the worker resources to ask for: only those some worker of the cluster advertises."""
    advertised: set[str] = set()
    for info in client.scheduler_info(n_workers=-1)["workers"].values():
        advertised |= set(info.get("resources") or {})

    def wanted(stage: str) -> dict[str, float] | None:
        name = "GPU" if stage in GPU_STAGES else "CPU"
        return {name: 1} if name in advertised else None

    return wanted


def _submit(client, experiments: list[Experiment], builds, stages, retries: int) -> dict:
    """Every stage as a Dask future fed by the future of the stage it needs; returns future -> (name, stage)."""
    resources = _resources(client)
    token = f"{time.time_ns():x}"
    build_futures = {sid: client.submit(run_stage, task, key=f"build-{sid}-{token}", retries=retries,
                                        resources=resources("build"), pure=False)
                     for sid, task in builds.items()}
    owners = {future: (f"{STORES}/{sid}", "build") for sid, future in build_futures.items()}
    for exp in experiments:
        futures = {"build": build_futures[store_id(exp)]}
        for stage, task in stages[exp.name].items():
            futures[stage] = client.submit(run_stage, task, futures[UPSTREAM[stage]],
                                           key=f"{stage}-{exp.name}-{token}", retries=retries,
                                           resources=resources(stage), pure=False)
            owners[futures[stage]] = (exp.name, stage)
    return owners


def _errored(future, owner: tuple[str, str]) -> dict[str, Any]:
    """The outcome of a future that raised: its own crash (failed) or a stage it needs that crashed (skipped)."""
    name, stage = owner
    error = future.exception()
    own = isinstance(error, StageCrashed) and (error.stage, error.experiment) == (stage, name)
    if own or type(error).__name__ == "KilledWorker":
        return {"experiment": name, "stage": stage, "status": "failed", "key": "", "seconds": 0.0, "worker": "",
                "error": str(error) if own else f"its worker was lost on every try ({error})"}
    return {"experiment": name, "stage": stage, "status": "skipped", "key": "", "seconds": 0.0, "worker": "",
            "error": f"a stage it needs failed: {error}"}


def _collect(owners: dict, say: Callable[[str], None]) -> list[dict[str, Any]]:
    from distributed import as_completed

    outcomes = []
    for i, future in enumerate(as_completed(list(owners)), 1):
        outcome = _errored(future, owners[future]) if future.status == "error" else future.result()
        outcome["experiment"] = owners[future][0]
        outcomes.append(outcome)
        error = f"  {outcome['error']}" if outcome["status"] in ("failed", "skipped") else ""
        say(f"[{i}/{len(owners)}] {outcome['experiment']:<24} {outcome['stage']:<8} {outcome['status']:<7} "
            f"{outcome['seconds']:7.1f} s{error}")
    return outcomes


def _write_plan(out: Path, manifest: Path, experiments: list[Experiment], dashboard: str) -> None:
    entries = {exp.name: {"store": store_id(exp), "stages": list(exp.stages)} for exp in experiments}
    write_text(out / RECORDS / "plan.json", json.dumps(
        {"manifest": str(manifest), "experiments": entries, "started": time.time(), "pid": os.getpid(),
         "host": os.uname().nodename, "dashboard": dashboard}, indent=1) + "\n")


def run_batch(manifest: str | Path, output_dir: str | Path, *, scheduler: str | None = None,
              workers: int | None = None, gpus: int | None = None, stages: list[str] | None = None,
              retries: int = 2,
              say: Callable[[str], None] | None = None) -> BatchResult:
    """Run every experiment of ``manifest`` into ``output_dir`` (see the module docstring); writes run.json."""
    say = say or (lambda line: print(line, flush=True))
    started = time.perf_counter()
    experiments = load_manifest(manifest, stages=stages)
    out = Path(output_dir).absolute()
    builds, tasks = plan(experiments, out)
    with _client(scheduler, workers, gpus) as client:
        result = BatchResult(out, dashboard=client.dashboard_link or "")
        _write_plan(out, Path(manifest).absolute(), experiments, result.dashboard)
        say(f"batch: {len(experiments)} experiments, {len(builds)} stores, on {client.scheduler.address} "
            f"({len(client.scheduler_info(n_workers=-1)['workers'])} workers); dashboard {result.dashboard}")
        result.outcomes = _collect(_submit(client, experiments, builds, tasks, retries), say)
        if not scheduler:
            client.cluster.close()
    result.seconds = time.perf_counter() - started
    write_text(out / RECORDS / "run.json", json.dumps({"finished": time.time(), "seconds": result.seconds,
                                                       "outcomes": result.outcomes}, indent=1) + "\n")
    return result


def main_summary(result: BatchResult) -> int:
    """Print the run's summary (failures to stderr) and return the exit status: 2 when a stage failed."""
    print(result.summary().splitlines()[0])
    for line in result.summary().splitlines()[1:]:
        print(line, file=sys.stderr)
    return 2 if result.failed else 0
