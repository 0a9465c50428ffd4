"""``bpnetz batch`` end to end on tiny simulated experiments, with real processes (the command, a dask scheduler
and two dask workers), SIGKILL midway, a worker killed mid-stage, reruns, a params change, a missing bigWig and
the report in Chromium.

One batch is run once per session (``finished``): 4 experiments, two per simulated experiment (so two pairs
share a store), build → train (1 epoch, tiny model) → predict. It is started on a LocalCluster the command
starts, killed with SIGKILL once a training stage has finished, and resumed on a separately started
``dask scheduler`` + 2 ``dask worker`` processes. Tests that change the batch work on a copy (mtimes kept).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

TINY = {"motif_module_params": {"filters": [8]}, "syntax_module_params": {"filters": 8, "num_dilation_layers": 2}}
HEADER = "name\tinput_data\tgenome\tchrom_sizes\tparams\tsplits\tseed\tstages\ttrain_args\n"


def _tiny_params(sim: Path, out: Path) -> Path:
    params = json.loads((sim / "bpnet_params.json").read_text())
    for key, values in TINY.items():
        params[key].update(values)
    out.write_text(json.dumps(params))
    return out


def _row(name: str, sim: Path, params: Path, seed: int, input_data: str = "input_data.json") -> str:
    return (f"{name}\t{sim / input_data}\t{sim / 'genome.fa'}\t{sim / 'chrom.sizes'}\t{params}\t"
            f"{sim / 'splits.json'}\t{seed}\tpredict\t--epochs 1 --batch-size 16\n")


def _bpnetz(*args: str, cwd: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bpnetz", *args], cwd=cwd, capture_output=True, text=True, check=False,
                          **kwargs)


def _done_outputs(out: Path) -> dict[str, int]:
    """mtime of every record and recorded output file of the finished stages."""
    found = {}
    for record in out.glob("**/.batch/*.json"):
        if record.name.count(".") == 1 and record.parent.parent != out:
            found[str(record)] = record.stat().st_mtime_ns
            for name in json.loads(record.read_text())["outputs"]:
                found[str(record.parent.parent / name)] = (record.parent.parent / name).stat().st_mtime_ns
    return found


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A ``dask scheduler`` and two ``dask worker`` processes (1 thread, resources GPU=1, CPU=1 each)."""
    root = tmp_path_factory.mktemp("cluster")
    dask = str(Path(sys.executable).parent / "dask")
    file = root / "scheduler.json"
    procs = [subprocess.Popen([dask, "scheduler", "--scheduler-file", str(file), "--port", "0",
                               "--dashboard-address", ":0"], stderr=subprocess.DEVNULL)]
    for _ in range(60):
        if file.is_file():
            break
        time.sleep(0.5)
    for i in range(2):
        procs.append(subprocess.Popen([dask, "worker", "--scheduler-file", str(file), "--nthreads", "1",
                                       "--name", f"w{i}", "--resources", "GPU=1,CPU=1"], stderr=subprocess.DEVNULL))
    yield json.loads(file.read_text())["address"]
    for proc in procs:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="session")
def finished(make_experiment, cluster, tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    sims = [make_experiment(seed=seed, motifs=motifs) for seed, motifs in ((0, None), (1, ["gata", "ctcf"]))]
    params = [_tiny_params(sim, root / f"params{i}.json") for i, sim in enumerate(sims)]
    rows = [_row("a", sims[0], params[0], 1), _row("b", sims[0], params[0], 2), _row("c", sims[1], params[1], 1),
            _row("d", sims[1], params[1], 2)]
    manifest = root / "manifest.tsv"
    manifest.write_text(HEADER + "".join(rows))
    out = root / "out"
    proc = subprocess.Popen([sys.executable, "-m", "bpnetz", "batch", "run", str(manifest), "--output-dir",
                             str(out), "--workers", "2"], start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not list(out.glob("*/.batch/train.json")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _done_outputs(out)
    status_killed = _bpnetz("batch", "status", str(out)).stdout
    started = time.perf_counter()
    rerun = _bpnetz("batch", "run", str(manifest), "--output-dir", str(out), "--scheduler", cluster)
    return {"root": root, "out": out, "manifest": manifest, "rows": rows, "sims": sims, "params": params,
            "before": before, "status_killed": status_killed, "rerun": rerun,
            "rerun_s": time.perf_counter() - started}


def test_killed_batch_resumes_on_a_separate_cluster_without_redoing_finished_stages(finished):
    assert finished["rerun"].returncode == 0, finished["rerun"].stderr
    assert "interrupted" in finished["status_killed"] or "running" in finished["status_killed"]
    assert any(path.endswith("train.json") for path in finished["before"])
    after = _done_outputs(finished["out"])
    assert {p: after[p] for p in finished["before"]} == finished["before"]  # untouched: not redone
    run = json.loads((finished["out"] / ".batch" / "run.json").read_text())
    assert {(o["experiment"], o["stage"]) for o in run["outcomes"] if o["status"] in ("done", "cached")} == {
        *((e, s) for e in "abcd" for s in ("train", "predict")), *((o["experiment"], "build") for o in
                                                                  run["outcomes"] if o["stage"] == "build")}
    assert len([o for o in run["outcomes"] if o["stage"] == "build"]) == 2  # a,b and c,d share a store


def test_outputs_equal_the_single_experiment_commands(finished, tmp_path):
    sim, out = finished["sims"][1], finished["out"]
    store = tmp_path / "store.zarr"
    steps = [["build", "--input-data", "input_data.json", "--reference-genome", "genome.fa", "--chrom-sizes",
              "chrom.sizes", "--input-seq-len", "400", "--output-len", "200", "--max-jitter", "128", "--output",
              str(store), "--quiet"],
             ["train", "--store", str(store), "--params", str(finished["params"][1]), "--splits", "splits.json",
              "--output-dir", str(tmp_path / "models"), "--seed", "2", "--quiet", "--epochs", "1",
              "--batch-size", "16"],
             ["predict", "--model", str(tmp_path / "models" / "model_split000"), "--store", str(store), "--split",
              "test", "--output-dir", str(tmp_path / "pred"), "--chrom-sizes", "chrom.sizes", "--quiet"]]
    for step in steps:
        assert _bpnetz(*step, cwd=sim).returncode == 0, step
    attrs = [json.loads((s / "zarr.json").read_text())["attributes"]["bpnetz"] for s in (store, out / "d" /
                                                                                        "store.zarr")]
    assert attrs[0]["checksum"] == attrs[1]["checksum"]
    with h5py.File(tmp_path / "pred" / "model_split000_predictions.h5") as single, \
            h5py.File(out / "d" / "pred" / "model_split000_predictions.h5") as batch:
        for name in ("pred_logcounts", "pred_profs", "true_profs"):
            np.testing.assert_allclose(batch["predictions"][name][:], single["predictions"][name][:], rtol=1e-4,
                                       atol=1e-5)


def test_rerunning_a_finished_batch_does_no_work(finished):
    before = _done_outputs(finished["out"])
    started = time.perf_counter()
    result = _bpnetz("batch", "run", str(finished["manifest"]), "--output-dir", str(finished["out"]), "--workers",
                     "1", "--no-report")
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert "10 cached" in result.stdout and "done" not in result.stdout.split("batch:")[-1]
    assert _done_outputs(finished["out"]) == before
    assert seconds < 60, seconds  # cluster start + checks; the first run took minutes


def _chromium_dom(html: Path) -> str | None:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        return None
    run = subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", html.as_uri()],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_params_change_and_missing_bigwig_rerun_only_what_they_touch_each_on_its_worker(finished, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(finished["out"], out, symlinks=True)  # copy2 keeps mtimes
    before = _done_outputs(out)
    sim = finished["sims"][0]
    broken = tmp_path / "broken_input_data.json"
    spec = json.loads((sim / "input_data.json").read_text())
    spec["0"]["signal"]["source"][0] = "data/no_such_plus.bw"
    broken.write_text(json.dumps(spec))
    rows = finished["rows"][:3] + [finished["rows"][3].replace("--batch-size 16", "--batch-size 8"),
                                   _row("e", sim, finished["params"][0], 1).replace(str(sim / "input_data.json"),
                                                                                   str(broken))]
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text(HEADER + "".join(rows))
    # one GPU worker (a CPU stands in for the device) and one CPU worker: each stage must run where it belongs
    result = _bpnetz("batch", "run", str(manifest), "--output-dir", str(out), "--workers", "1", "--gpus", "1")
    assert result.returncode == 2
    assert "no_such_plus.bw" in result.stderr
    run = json.loads((out / ".batch" / "run.json").read_text())
    ran = {(o["experiment"], o["stage"]) for o in run["outcomes"] if o["status"] == "done"}
    assert ran == {("d", "train"), ("d", "predict")}
    placed = {(o["stage"] in ("train", "predict"), o["worker"]) for o in run["outcomes"] if o["status"] != "skipped"}
    assert placed == {(True, "gpu0"), (False, "cpu0")}
    after = _done_outputs(out)
    unchanged = [p for p in before if "/d/" not in p]
    assert {p: after[p] for p in unchanged} == {p: before[p] for p in unchanged}
    status = _bpnetz("batch", "status", str(out)).stdout
    line = next(line for line in status.splitlines() if line.startswith("e "))
    assert "failed" in line and "skipped" in line and "no_such_plus.bw" in status
    page = (out / "atlas_report.html").read_text()
    assert "no_such_plus.bw" in page
    dom = _chromium_dom(out / "atlas_report.html")
    if dom is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium): the page was checked as text only")
    for name in "abcde":
        assert f'data-name="{name}"' in dom
    metrics = json.loads((out / "a" / "pred" / "metrics.json").read_text())["results"]
    assert f"{metrics['model']['task']['0']['counts_pearson']:.3f}" in dom
    assert f"{metrics['upper_bound']['task']['0']['counts_pearson']:.3f}" in dom


def test_report_shows_every_experiments_metrics_and_the_motifs_they_share(finished, tmp_path):
    """tfmodisco-lite finds nothing in the tiny experiments, so a real run on planted-motif scores stands in
    for the modisco stage of experiments a and c; the report must group its patterns across them."""
    from bpnetz.batch.report import write_report
    from bpnetz.motifs.modisco import load_patterns
    from tests.shap.synthetic_motifs import make_scores

    out = tmp_path / "out"
    shutil.copytree(finished["out"], out, symlinks=True)
    make_scores(tmp_path / "counts_scores.h5", n_loci=400, length=200)
    assert _bpnetz("modisco", "--scores", str(tmp_path / "counts_scores.h5"), "--output-dir",
                   str(out / "a" / "modisco"), "--max-seqlets", "1000").returncode == 0
    shutil.copytree(out / "a" / "modisco", out / "c" / "modisco")
    patterns = load_patterns(out / "a" / "modisco" / "modisco_results.h5")
    assert patterns
    tsv, page = write_report(out)
    rows = [line.split("\t") for line in tsv.read_text().splitlines()]
    header = rows[0]
    motifs = {row[0]: row[header.index("motifs")] for row in rows[1:]}
    assert motifs["a"] == motifs["c"] != "" and motifs["b"] == motifs["d"] == ""
    dom = _chromium_dom(page)
    if dom is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium): the page was checked as text only")
    for name in "abcd":
        metrics = json.loads((out / name / "pred" / "metrics.json").read_text())["results"]
        assert f'data-name="{name}"' in dom
        for point in ("model", "baseline", "upper_bound"):
            assert f"{metrics[point]['task']['0']['counts_pearson']:.3f}" in dom
    motif_rows = dom.split("id=\"motifs\"")[1]
    assert motif_rows.count('class="motif"') == len(patterns)
    assert motif_rows.count("data:image/png;base64,") == len(patterns)
    for pattern in patterns:
        assert motif_rows.count(f"{pattern.name}<br>similarity 1.00") == 2  # in a and in c


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def test_a_worker_lost_mid_stage_is_retried_elsewhere(make_experiment, tmp_path):
    """SIGKILL the worker process (and the command it runs) while a build runs: the build reruns, the batch ends."""
    sim = make_experiment()
    dask = str(Path(sys.executable).parent / "dask")
    file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([dask, "scheduler", "--scheduler-file", str(file), "--port", "0",
                               "--dashboard-address", ":0"], stderr=subprocess.DEVNULL)]
    try:
        while not file.is_file():
            time.sleep(0.2)
        procs += [subprocess.Popen([dask, "worker", "--scheduler-file", str(file), "--nthreads", "1"],
                                   stderr=subprocess.DEVNULL) for _ in range(2)]
        (tmp_path / "m.tsv").write_text(HEADER + _row("a", sim, sim / "bpnet_params.json", 1).replace(
            "\tpredict\t", "\tbuild\t"))
        batch = subprocess.Popen([sys.executable, "-m", "bpnetz", "batch", "run", str(tmp_path / "m.tsv"),
                                  "--output-dir", str(tmp_path / "out"), "--scheduler",
                                  json.loads(file.read_text())["address"]], stdout=subprocess.PIPE, text=True)
        marker = None
        while marker is None and batch.poll() is None:
            marker = next(iter((tmp_path / "out" / "stores").glob("*/.batch/build.running")), None)
            time.sleep(0.05)
        assert marker is not None, "the build finished before it could be interrupted"
        running = json.loads(marker.read_text())
        victim = running["pid"]
        for pid in [*_children(victim), victim]:
            os.kill(pid, signal.SIGKILL)
        stdout, _ = batch.communicate(timeout=300)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
    assert batch.returncode == 0, stdout
    record = json.loads(next((tmp_path / "out" / "stores").glob("*/.batch/build.json")).read_text())
    assert record["worker"] != running["worker"]  # rerun by another (or the restarted) worker process
    assert (tmp_path / "out" / "a" / "store.zarr" / "zarr.json").is_file() and "build    done" in stdout
