"""Reading a store at an s3:// URL (tests/remote/conftest.py) gives exactly what the same store gives locally:
the reader's rows (whole-shard GETs with read-ahead, CRC-checked decoding), the streamed loader's elements, the
xarray view, info/verify, and a changed byte is caught by verify."""

from __future__ import annotations

import numpy as np
import pytest

from bpnetz.build.builder import build_store
from bpnetz.errors import InputError
from bpnetz.files.remote import filesystem
from bpnetz.store.reader import StoreReader
from bpnetz.store.stream import LocusStream
from tests.build.tiny_inputs import write_tiny_experiment


@pytest.fixture(scope="module")
def stores(tmp_path_factory, s3_server):
    """The same experiment built locally and to the bucket (as the writer)."""
    root = tmp_path_factory.mktemp("remote-read")
    exp = write_tiny_experiment(root / "exp")
    local = root / "local.zarr"
    build_store(**exp.build_args(local))
    with pytest.MonkeyPatch.context() as mp:
        from tests.remote.conftest import WRITER, _use

        _use(s3_server, WRITER, mp)
        mp.setenv("BPNETZ_STAGING", str(root / "staging"))
        url = f"s3://{s3_server.bucket}/read-{root.name}.zarr"
        build_store(**exp.build_args(url))
    return local, url


def test_reader_rows_from_s3_equal_the_local_rows(stores, as_reader):
    local, url = stores
    mine, theirs = StoreReader(local), StoreReader(url)
    assert theirs._decoders["seq"] is not None and theirs._decoders["seq"].remote is not None  # the fast path
    rows = np.arange(mine.n_loci)
    a, b = mine.read_rows(rows), theirs.read_rows(rows)
    for name, array in a.arrays().items():
        assert np.array_equal(array, b.arrays()[name]), name
    assert mine.loci.equals(theirs.loci)


def test_streamed_elements_from_s3_equal_the_local_ones(stores, as_reader):
    local, url = stores
    streams = [LocusStream(path, None, "all", batch_size=8, cache=False, shuffle=True, jitter=True, seed=3)
               for path in (local, url)]
    assert not streams[1].cached
    for a, b in zip(streams[0].elements(0), streams[1].elements(0), strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert np.array_equal(a[key], b[key]), key


def test_dataset_info_and_verify_read_a_url(stores, as_reader):
    from bpnetz.store.dataset import open_dataset
    from bpnetz.store.inspect import store_info, verify_store

    local, url = stores
    assert open_dataset(url).equals(open_dataset(local))
    assert "loci" in store_info(url)
    assert verify_store(url, check_sources=False).problems == []


def test_verify_finds_a_changed_byte_in_the_bucket(stores, as_writer, tmp_path):
    _, url = stores
    fs, key = filesystem(url)
    shard = min(k for k in fs.find(f"{key}/signal") if "/c/" in k)
    data = bytearray(fs.cat_file(shard))
    original = bytes(data)
    data[len(data) // 3] ^= 0x01
    fs.pipe_file(shard, bytes(data))
    try:
        from bpnetz.store.inspect import verify_store

        problems = verify_store(url, check_sources=False).problems
        assert any("signal" in p and ("CRC32C" in p or "checksum" in p) for p in problems), problems
        with pytest.raises(InputError, match="damaged"):
            StoreReader(url).read_block(0)
    finally:
        fs.pipe_file(shard, original)
