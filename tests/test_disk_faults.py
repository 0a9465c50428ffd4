"""A full disk and a read-only output location end every writing command with one paragraph and exit status 2.

Real file systems, not mocks: each test mounts a small tmpfs (filled to a few KiB, or remounted read-only) and
runs the real ``bpnetz`` command in a subprocess (a crash inside HDF5 or libBigWig would kill pytest itself; here
it shows as exit 139). Needs root and mount(2) (CI runs as root); skipped with the reason where mounting is not
permitted. Commands: build, train, predict with ``--generate-predicted-profile-bigWigs``, shap and modisco.

The bigWig writer is also checked in-process across a sweep of free space: each write either fails with ENOSPC
naming the bigWig and leaves nothing, or leaves a file whose values read back (pyBigWig) equal those written.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyBigWig
import pytest

from tests.build.tiny_inputs import write_tiny_experiment

ROOT = Path(__file__).resolve().parents[1]
IN_LEN, OUT_LEN, JITTER = 200, 100, 10
PARAMS = {"input_len": IN_LEN, "output_profile_len": OUT_LEN,
          "motif_module_params": {"filters": [4], "kernel_sizes": [21]},
          "syntax_module_params": {"num_dilation_layers": 2, "filters": 4, "kernel_size": 3},
          "profile_head_params": {"kernel_size": 69}}
SPLIT = {"val": ["chr1"], "test": ["chr2"], "train": ["chr1", "chr2"]}
DISK_BYTES = 1 << 20
LEFT_FREE = 8 << 10


def _free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def _mount_tmpfs(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(target)],
                          check=False, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({done.stderr.strip() or done.returncode}); these "
                    "tests need root and mount(2)")


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """Factory: ``small_disk(free_bytes)`` -> the root of a fresh 1 MiB tmpfs filled up to ``free_bytes``."""
    mounted: list[Path] = []

    def make(free: int) -> Path:
        target = tmp_path / f"disk{len(mounted)}"
        _mount_tmpfs(target)
        mounted.append(target)
        (target / "filler").write_bytes(b"\0" * (_free_bytes(target) - free))
        assert _free_bytes(target) <= free
        return target

    yield make
    for target in mounted:
        subprocess.run(["umount", str(target)], check=True)


@pytest.fixture()
def location(request: pytest.FixtureRequest, small_disk: Callable[[int], Path], tmp_path: Path) -> Iterator[Path]:
    """An output location: a full disk ("full", LEFT_FREE bytes free) or a read-only one ("read-only")."""
    if request.param == "full":
        yield small_disk(LEFT_FREE)
        return
    target = tmp_path / "readonly"
    _mount_tmpfs(target)
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True)
        with pytest.raises(OSError) as err:
            (target / "probe").write_text("x")
        assert err.value.errno == errno.EROFS
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny build experiment, its store, JSON files, an untrained model directory and a modisco score file."""
    from bpnetz.build.builder import build_store
    from bpnetz.store.reader import StoreReader
    from tests.shap.synthetic_motifs import make_scores
    from tests.tiny_model import save_model_dir

    root = tmp_path_factory.mktemp("faults")
    exp = write_tiny_experiment(root / "exp", n_peaks=24)
    store = root / "store.zarr"
    build_store(**exp.build_args(store, max_jitter=JITTER))
    model_dir = root / "models" / "model_split000"
    save_model_dir(model_dir, store, StoreReader(store).layout, PARAMS, SPLIT)
    (root / "bpnet_params.json").write_text(json.dumps(PARAMS))
    (root / "splits.json").write_text(json.dumps({"0": SPLIT}))
    make_scores(root / "scores.h5", n_loci=120, length=200)
    return {"root": root, "exp": exp.root, "store": store, "model": model_dir, "params": root / "bpnet_params.json",
            "splits": root / "splits.json", "scores": root / "scores.h5"}


def _command(name: str, e: dict[str, Path], out: Path) -> list[str]:
    exp = e["exp"]
    return {
        "build": ["build", "--input-data", str(exp / "input_data.json"), "--reference-genome", str(exp / "genome.fa"),
                  "--chrom-sizes", str(exp / "chrom.sizes"), "--input-seq-len", str(IN_LEN), "--output-len",
                  str(OUT_LEN), "--max-jitter", str(JITTER), "--output", str(out / "store.zarr"), "--quiet"],
        "train": ["train", "--store", str(e["store"]), "--params", str(e["params"]), "--splits", str(e["splits"]),
                  "--output-dir", str(out / "models"), "--epochs", "1", "--threads", "1", "--quiet"],
        "predict": ["predict", "--model", str(e["model"]), "--store", str(e["store"]), "--output-dir",
                    str(out / "pred"), "--chrom-sizes", str(exp / "chrom.sizes"),
                    "--generate-predicted-profile-bigWigs", "--quiet"],
        "shap": ["shap", "--model", str(e["model"]), "--store", str(e["store"]), "--output-dir", str(out / "shap"),
                 "--chroms", "chr2", "--num-shuffles", "2", "--generate-shap-bigWigs", "--chrom-sizes",
                 str(exp / "chrom.sizes"), "--quiet"],
        "modisco": ["modisco", "--scores", str(e["scores"]), "--output-dir", str(out / "modisco"),
                    "--max-seqlets", "300"],
    }[name]


def run_bpnetz(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m bpnetz ARGS`` in a subprocess (this checkout first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "TF_NUM_INTRAOP_THREADS": "1",
           "TF_NUM_INTEROP_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "bpnetz", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False, timeout=900)


def assert_one_paragraph(done: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2, no traceback, one 'error:' paragraph containing every fragment; returns it."""
    assert done.returncode == 2, f"exit {done.returncode}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize("location", ["full", "read-only"], indirect=True)
@pytest.mark.parametrize("command", ["build", "train", "predict", "shap", "modisco"])
def test_writing_onto_a_full_or_read_only_disk_is_one_paragraph(command, location, experiment):
    done = run_bpnetz(_command(command, experiment, location), cwd=experiment["exp"])
    full = _free_bytes(location) < LEFT_FREE + 1 and not os.statvfs(location).f_flag & os.ST_RDONLY
    message = assert_one_paragraph(done, str(location), "no space is left" if full else "read-only file system")
    assert "Free space" in message if full else "writable disk" in message
    leftovers = [p.name for p in location.rglob("*") if p.is_file() and p.name != "filler"]
    assert not [name for name in leftovers if name.endswith(".tmp")], leftovers


def _bigwig_values(rng: np.random.Generator) -> tuple[dict[str, int], list[str], np.ndarray, np.ndarray]:
    sizes = {"chr1": 60_000, "chr2": 50_000}
    chroms = ["chr1"] * 30 + ["chr2"] * 20
    starts = np.array([i * 1_500 for i in range(30)] + [i * 2_000 for i in range(20)], dtype=np.int64)
    values = rng.random((50, 1_000, 1)).round(3)
    return sizes, chroms, starts, values


def test_bigwig_writes_fail_cleanly_or_read_back_exactly(small_disk):
    """Across free space from none to enough: ENOSPC naming the bigWig (nothing left), or an exact file."""
    from bpnetz.genome.bigwig import write_track_bigwigs

    sizes, chroms, starts, values = _bigwig_values(np.random.default_rng(0))
    outcomes = []
    for free in range(0, 400_001, 25_000):
        disk = small_disk(free)
        target = disk / "out" / "track_{i}.bw"
        try:
            [path] = write_track_bigwigs(str(target), sizes, chroms, starts, values, ["t"])
        except OSError as err:
            assert err.errno == errno.ENOSPC and err.filename == str(target).format(i=0)
            assert [p.name for p in (disk / "out").iterdir()] == []
            outcomes.append("ENOSPC")
            continue
        bw = pyBigWig.open(str(path))
        for chrom, start, row in zip(chroms, starts, values[:, :, 0], strict=True):
            np.testing.assert_allclose(bw.values(chrom, int(start), int(start) + 1_000), row, rtol=1e-6)
        bw.close()
        outcomes.append("written")
    assert "ENOSPC" in outcomes and "written" in outcomes, outcomes  # the sweep crosses the boundary


def test_unobserved_sibling_disk_failures_stay_quiet_other_task_failures_do_not(caplog):
    """zarr writes concurrently; when the disk fills, sibling tasks fail unobserved and asyncio would print each
    with a traceback after our one paragraph (seen on CI). Those are dropped; a task's real bug is still shown."""
    import asyncio
    import gc

    from bpnetz.cli import run_guarded

    async def fail(error: Exception) -> None:
        raise error

    def entry(argv) -> int:
        loop = asyncio.new_event_loop()
        tasks = [loop.create_task(fail(OSError(errno.ENOSPC, "No space left on device"))),
                 loop.create_task(fail(ValueError("a real bug")))]
        loop.run_until_complete(asyncio.sleep(0.01))
        del tasks
        gc.collect()
        loop.close()
        return 0

    assert run_guarded(entry, []) == 0
    reported = [record.exc_info[1] for record in caplog.records if record.name == "asyncio"]
    assert [type(exc) for exc in reported] == [ValueError], reported
