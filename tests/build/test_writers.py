"""One writer at a time on a store, and readers that notice a store replaced under them (real processes)."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from bpnetz.build.builder import build_store, find_or_build_store
from bpnetz.cli import main as cli_main
from bpnetz.errors import InputError
from bpnetz.store import schema
from bpnetz.store.inspect import verify_store
from bpnetz.store.reader import StoreReader
from tests.build.tiny_inputs import INPUT_LEN, MAX_JITTER, OUTPUT_LEN, write_tiny_experiment

ROOT = Path(__file__).resolve().parents[2]
ARRAYS = ("seq", "signal", "bias", "chrom", "summit")


@pytest.fixture(scope="module")
def two_experiments(tmp_path_factory):
    """Two experiments of different inputs, each with its direct (single-writer) build as the expectation."""
    root = tmp_path_factory.mktemp("writers")
    experiments = [write_tiny_experiment(root / f"exp{seed}", seed=seed) for seed in (0, 1)]
    for k, experiment in enumerate(experiments):
        build_store(**experiment.build_args(root / f"direct{k}.zarr"))
    return root, experiments


def _cli(experiment, output: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bpnetz", "build", "--input-data", str(experiment.input_data),
            "--reference-genome", str(experiment.fasta), "--chrom-sizes", str(experiment.chrom_sizes),
            "--input-seq-len", str(INPUT_LEN), "--output-len", str(OUTPUT_LEN), "--max-jitter", str(MAX_JITTER),
            "--output", str(output), "--workers", "1", "--quiet", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _same_store(path: Path, expected: Path) -> bool:
    a, b = zarr.open_group(str(path), mode="r"), zarr.open_group(str(expected), mode="r")
    if schema.metadata(a)["checksum"] != schema.metadata(b)["checksum"]:
        return False
    return all(np.array_equal(a[name][:], b[name][:]) for name in ARRAYS)


def test_two_builds_of_different_inputs_into_one_path(two_experiments):
    root, experiments = two_experiments
    output = root / "contested.zarr"
    procs = [subprocess.Popen(_cli(e, output), env=_env(), stderr=subprocess.PIPE, text=True) for e in experiments]
    results = [(p.wait(300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    winner = [rc for rc, _ in results].index(0)
    loser_err = results[1 - winner][1]
    assert "Traceback" not in loser_err and str(output) in loser_err
    assert "another bpnetz process is writing this store" in loser_err or "already exists" in loser_err
    assert _same_store(output, root / f"direct{winner}.zarr")
    assert verify_store(output).ok


def test_overwrite_refuses_a_users_directory(two_experiments, capsys):
    root, experiments = two_experiments
    mine = root / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    argv = _cli(experiments[0], mine, "--overwrite")[3:]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert str(mine) in err and "not a bpnetz store" in err and "Traceback" not in err
    assert (mine / "notes.txt").read_text() == "keep me"


def test_overwrite_swaps_a_store_in(two_experiments, tmp_path):
    root, experiments = two_experiments
    output = tmp_path / "store.zarr"
    build_store(**experiments[0].build_args(output))
    build_store(**experiments[1].build_args(output, overwrite=True))
    assert _same_store(output, root / "direct1.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.zarr"]  # nothing aside, no lock left


def test_reader_fails_when_the_store_is_replaced_under_it(two_experiments, tmp_path):
    root, experiments = two_experiments
    output = tmp_path / "store.zarr"
    build_store(**experiments[0].build_args(output))
    reader = StoreReader(output)
    first = reader.read_block(0)
    assert np.array_equal(first.seq, zarr.open_group(str(root / "direct0.zarr"))["seq"][:len(first.seq)])
    rebuild = subprocess.run(_cli(experiments[1], output, "--overwrite"), env=_env(), capture_output=True,
                             text=True, check=False)
    assert rebuild.returncode == 0, rebuild.stderr
    with pytest.raises(InputError, match="the store changed while it was being read") as err:
        reader.read_block(0)
    assert str(output) in str(err.value) and "Rerun" in str(err.value)
    with pytest.raises(InputError):
        reader.check_unchanged()


def _cached(cache: str, args: dict, queue) -> None:
    try:
        queue.put(str(find_or_build_store(cache, **args)))
    except Exception as err:  # noqa: BLE001 (reported to the test)
        queue.put(f"failed: {type(err).__name__}: {err}")


def test_two_jobs_share_a_fresh_store_cache(two_experiments, tmp_path):
    root, experiments = two_experiments
    args = experiments[0].build_args(None)
    del args["output"]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_cached, args=(str(tmp_path / "cache"), args, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    paths = [queue.get(timeout=5) for _ in procs]
    assert paths[0] == paths[1] and not paths[0].startswith("failed"), paths
    assert [p.exitcode for p in procs] == [0, 0]
    assert _same_store(Path(paths[0]), root / "direct0.zarr")
    assert len(list((tmp_path / "cache").glob("*.zarr"))) == 1
