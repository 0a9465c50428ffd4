"""Stores at s3:// URLs on a real S3-compatible server (tests/remote/conftest.py): a store built to a URL equals
the same store built locally, readers never see a partial store, two builds of one output never interleave, the
catalog reuses or adds stores, a read-only identity reads but cannot write, and no credential leaks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from bpnetz.build.builder import build_store
from bpnetz.errors import InputError
from bpnetz.store import schema
from bpnetz.store.reader import StoreReader
from tests.build.tiny_inputs import INPUT_LEN, MAX_JITTER, OUTPUT_LEN, write_tiny_experiment
from tests.remote.conftest import READER, WRITER

ARRAYS = ("seq", "signal", "bias", *schema.LOCUS_COORDS)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory):
    return write_tiny_experiment(tmp_path_factory.mktemp("remote-exp"))


@pytest.fixture(autouse=True)
def staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BPNETZ_STAGING", str(tmp_path / "staging"))
    return tmp_path / "staging"


def url(server, name: str) -> str:
    return f"s3://{server.bucket}/{name}"


def _unique(name: str) -> str:
    return f"{name}-{os.urandom(4).hex()}"


def _raw_group(server, path: str):
    """The store read with zarr alone (the bucket through s3fs, independently of bpnetz's reader)."""
    return zarr.open_group(path, mode="r", storage_options={"endpoint_url": server.endpoint, "key": WRITER[0],
                                                           "secret": WRITER[1]})


def test_store_built_to_s3_equals_the_local_build(experiment, as_writer, tmp_path, staging):
    local = tmp_path / "local.zarr"
    build_store(**experiment.build_args(local))
    remote = url(as_writer, _unique("equal") + ".zarr")
    summary = build_store(**experiment.build_args(remote))
    assert str(summary.path) == remote
    mine, theirs = zarr.open_group(str(local), mode="r"), _raw_group(as_writer, remote)
    for name in ARRAYS:
        a, b = np.asarray(mine[name][:]), np.asarray(theirs[name][:])
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), name
    meta_local, meta_remote = dict(mine.attrs)["bpnetz"], dict(theirs.attrs)["bpnetz"]
    for key in set(meta_local) | set(meta_remote):
        if key != "created":
            assert meta_local.get(key) == meta_remote.get(key), key
    import s3fs

    record = json.loads(s3fs.S3FileSystem().cat_file(f"{remote.removeprefix('s3://')}/{schema.COMMIT_MARKER}"))
    assert record["checksum"] == meta_remote["checksum"] and record["build_key"] == meta_remote["build_key"]
    assert not list(staging.rglob("zarr.json"))  # the staged copy is removed once committed


def test_an_uncommitted_store_is_refused_and_a_committed_one_never_replaced(experiment, as_writer):
    import s3fs

    remote = url(as_writer, _unique("partial") + ".zarr")
    fs = s3fs.S3FileSystem()
    fs.pipe_file(remote.removeprefix("s3://") + "/zarr.json", b'{"zarr_format": 3, "node_type": "group"}')
    with pytest.raises(InputError, match="uncommitted store.*rerun the same 'bpnetz build'"):
        schema.open_group(remote)
    done = url(as_writer, _unique("done") + ".zarr")
    build_store(**experiment.build_args(done))
    before = fs.find(done.removeprefix("s3://"), detail=True)
    with pytest.raises(InputError, match="never overwritten in place"):
        build_store(**experiment.build_args(done))
    with pytest.raises(InputError, match="--overwrite cannot replace a store at a URL"):
        build_store(**experiment.build_args(done, overwrite=True))
    assert fs.find(done.removeprefix("s3://"), detail=True) == before


REPO = Path(__file__).resolve().parents[2]
SECRETS = (WRITER[0], WRITER[1], READER[0], READER[1])


def _cli(server, identity, *args: str, staging: Path, wait: bool = True):
    env = {**server.env(identity), "PYTHONPATH": str(REPO), "BPNETZ_STAGING": str(staging)}
    command = [sys.executable, "-m", "bpnetz", *args]
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=300)


def _build_args(exp, *target: str) -> list[str]:
    return ["build", "--input-data", str(exp.input_data), "--reference-genome", str(exp.fasta), "--chrom-sizes",
            str(exp.chrom_sizes), "--input-seq-len", str(INPUT_LEN), "--output-len", str(OUTPUT_LEN),
            "--max-jitter", str(MAX_JITTER), "--workers", "1", *target]


def _no_secret(*texts: str, roots: tuple[Path, ...] = ()) -> None:
    """No credential string in any message or in any file under ``roots``."""
    for text in texts:
        for secret in SECRETS:
            assert secret not in text
    for root in roots:
        for file in (f for f in root.rglob("*") if f.is_file()):
            data = file.read_bytes()
            for secret in SECRETS:
                assert secret.encode() not in data, file


def test_two_builds_of_one_output_give_one_store_or_one_clear_error(experiment, as_reader, tmp_path, staging):
    remote = url(as_reader, _unique("race") + ".zarr")
    local = tmp_path / "expected.zarr"
    build_store(**experiment.build_args(local))
    expected = StoreReader(local)
    builds = [_cli(as_reader, WRITER, *_build_args(experiment, "--output", remote), staging=staging, wait=False)
              for _ in range(2)]
    seen_committed = 0
    while any(b.poll() is None for b in builds):  # a reader during the builds: nothing, or the whole store
        try:
            reader = StoreReader(remote)
        except InputError as err:
            assert "uncommitted store" in str(err) or "does not exist" in str(err), err
            continue
        rows = reader.read_rows(np.arange(reader.n_loci))
        assert np.array_equal(rows.seq, expected.read_rows(np.arange(expected.n_loci)).seq)
        seen_committed += 1
    outputs = [b.communicate() for b in builds]
    codes = sorted(b.returncode for b in builds)
    assert codes == [0, 2], outputs
    failed = outputs[[b.returncode for b in builds].index(2)][1]
    assert "another bpnetz job is writing this store" in failed or "already holds a committed store" in failed
    assert "Traceback" not in failed
    assert np.array_equal(StoreReader(remote).read_rows(np.arange(expected.n_loci)).signal,
                          expected.read_rows(np.arange(expected.n_loci)).signal)
    _no_secret(*(text for pair in outputs for text in pair), roots=(staging,) if staging.exists() else ())


def _objects(prefix: str) -> dict[str, tuple]:
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    return {k: (v["size"], v.get("ETag"), str(v.get("LastModified"))) for k, v in
            fs.find(prefix.removeprefix("s3://"), detail=True).items()}


def test_catalog_reuses_the_same_inputs_and_adds_a_store_for_changed_ones(as_reader, tmp_path, staging):
    exp = write_tiny_experiment(tmp_path / "exp", seed=5)
    catalog = url(as_reader, _unique("catalog"))
    first = _cli(as_reader, WRITER, *_build_args(exp, "--catalog", catalog), staging=staging)
    assert first.returncode == 0, first.stderr
    store_url = first.stdout.strip()
    assert store_url.startswith(catalog + "/store-") and "committed" in first.stderr
    before = _objects(catalog)
    second = _cli(as_reader, READER, *_build_args(exp, "--catalog", catalog), staging=staging)  # read-only: reuse
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == store_url and "using cached store" in second.stderr
    assert "build" not in second.stderr.replace("'bpnetz build'", "")
    assert _objects(catalog) == before  # nothing written
    write_bigwig_changed(exp.bigwigs["plus"])
    refused = _cli(as_reader, READER, *_build_args(exp, "--catalog", catalog), staging=staging)
    assert refused.returncode == 2 and "permission denied" in refused.stderr and "Traceback" not in refused.stderr
    assert _objects(catalog) == before  # the read-only identity wrote nothing, not even a lock
    third = _cli(as_reader, WRITER, *_build_args(exp, "--catalog", catalog), staging=staging)
    assert third.returncode == 0, third.stderr
    assert third.stdout.strip() != store_url
    after = _objects(catalog)
    assert {k: v for k, v in after.items() if k in before} == before  # the old store untouched
    listing = _cli(as_reader, READER, "store", "list", catalog, staging=staging)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split()[:2] == ["name", "tasks"] and lines[-1] == "2 store(s)"
    names = sorted(line.split()[0] for line in lines[1:-1])
    assert names == sorted(u.rsplit("/", 1)[1] for u in (store_url, third.stdout.strip()))
    meta = StoreReader(store_url).meta
    row = next(line for line in lines if line.startswith(store_url.rsplit("/", 1)[1]))
    assert f"{meta['n_loci']:,}" in row.split() and meta["genome"]["checksum"][:16] in row.split()
    _no_secret(*(p.stdout + p.stderr for p in (first, second, refused, third, listing)), roots=(tmp_path,))


def write_bigwig_changed(path: Path) -> None:
    """Rewrite a bigWig with one value changed (a new checksum, so a new build key)."""
    import pyBigWig

    handle = pyBigWig.open(str(path))
    chroms = handle.chroms()
    values = {c: np.nan_to_num(np.asarray(handle.values(c, 0, n), dtype=float)) for c, n in chroms.items()}
    handle.close()
    first = next(iter(values))
    values[first][100] += 7
    out = pyBigWig.open(str(path), "w")
    out.addHeader(list(chroms.items()))
    for chrom, v in values.items():
        out.addEntries(chrom, 0, values=[float(x) for x in v], span=1, step=1)
    out.close()


def test_a_read_only_identity_cannot_build_and_writes_nothing(experiment, as_reader, staging):
    remote = url(as_reader, _unique("denied") + ".zarr")
    result = _cli(as_reader, READER, *_build_args(experiment, "--output", remote), staging=staging)
    assert result.returncode == 2, result.stderr
    assert "permission denied" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    prefix = remote.rsplit("/", 1)[1]
    assert not [k for k in _objects(f"s3://{as_reader.bucket}") if prefix in k]
    _no_secret(result.stdout, result.stderr)


def test_an_interrupted_remote_build_resumes(experiment, as_writer, staging):
    """The state an interruption during the upload leaves (the store finished in staging, part of its objects in
    the bucket, no marker): the rerun builds nothing, uploads the rest and commits."""
    import s3fs

    from bpnetz.build import remote as publish
    from bpnetz.build.builder import _build
    from bpnetz.store.checksum import ChecksumCache

    remote = url(as_writer, _unique("resume") + ".zarr")
    local = publish.staging_path(remote)
    local.parent.mkdir(parents=True)
    args = experiment.build_args(local)
    _build(args["input_data"], args["reference_genome"], args["chrom_sizes"], local, args["options"],
           ChecksumCache(None))
    fs = s3fs.S3FileSystem()
    files = sorted(f for f in local.rglob("*") if f.is_file())
    for file in files[: len(files) // 2]:
        fs.pipe_file(f"{remote.removeprefix('s3://')}/{file.relative_to(local).as_posix()}", file.read_bytes())
    with pytest.raises(InputError, match="uncommitted store"):
        schema.open_group(remote)
    summary = build_store(**experiment.build_args(remote))
    assert summary.blocks_built == 0 and summary.loci_built == 0
    reference = StoreReader(schema.open_group(remote))
    fresh = staging.parent / "fresh.zarr"
    build_store(**experiment.build_args(fresh))
    expected = StoreReader(fresh)
    rows = np.arange(expected.n_loci)
    for name, array in expected.read_rows(rows).arrays().items():
        assert np.array_equal(array, reference.read_rows(rows).arrays()[name]), name
