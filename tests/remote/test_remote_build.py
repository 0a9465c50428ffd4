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
from tests.build.tiny_inputs import write_tiny_experiment
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
