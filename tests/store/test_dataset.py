"""open_dataset: dims, coordinates, track names and lazy values, checked against direct pyfaidx/pyBigWig reads."""

from __future__ import annotations

import numpy as np
import pyBigWig
import pyfaidx
import pytest

from bpnetz.build.builder import build_store
from bpnetz.errors import InputError
from bpnetz.store import schema
from bpnetz.store.dataset import open_dataset
from tests.build.tiny_inputs import (
    INPUT_LEN,
    MAX_JITTER,
    OUTPUT_LEN,
    write_tiny_experiment,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    experiment = write_tiny_experiment(root, seed=5, smoothing=[[2.0, 11], [2.0, 11]])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(schema, "CHUNK_LOCI", 16)
        mp.setattr(schema, "SHARD_LOCI", 32)
        build_store(**experiment.build_args(root / "store.zarr"))
    return experiment, root / "store.zarr"


def test_dims_coords_and_attrs(store):
    experiment, path = store
    ds = open_dataset(path)
    assert dict(ds.sizes) == {"locus": 92, "seq_pos": INPUT_LEN + 2 * MAX_JITTER,
                              "pos": OUTPUT_LEN + 2 * MAX_JITTER, "track": 2, "bias_track": 4}
    assert ds.seq.dims == ("locus", "seq_pos") and ds.signal.dims == ("locus", "pos", "track")
    assert ds.bias.dims == ("locus", "pos", "bias_track")
    assert ds.track.values.tolist() == ["0/+", "0/-"]
    assert ds.bias_track.values.tolist() == ["0/bias/+", "0/bias/-", "0/bias/+/smooth_2_11",
                                             "0/bias/-/smooth_2_11"]
    assert set(schema.LOCUS_COORDS) <= set(ds.coords)
    assert ds.chrom.dtype.kind == "U" and set(ds.chrom.values.tolist()) == {"chr1", "chr2"}
    assert ds.attrs["n_loci"] == 92 and ds.attrs["schema_version"] == schema.SCHEMA_VERSION
    assert ds.signal.chunks is not None  # lazy, Dask-backed
    # peaks and background loci of the task are all there, with their kinds
    assert int((ds.kind == schema.KIND_PEAK).sum()) == 62 and int((ds.kind == schema.KIND_BACKGROUND).sum()) == 30


def test_values_equal_direct_reads(store):
    experiment, path = store
    ds = open_dataset(path)
    fasta = pyfaidx.Fasta(str(experiment.fasta))
    plus = pyBigWig.open(str(experiment.bigwigs["plus"]))
    for i in range(0, ds.sizes["locus"], 9):
        row = ds.isel(locus=i)
        chrom, summit = str(row.chrom.values), int(row.summit.values)
        lo = summit - INPUT_LEN // 2 - MAX_JITTER
        text = fasta[chrom][lo:lo + INPUT_LEN + 2 * MAX_JITTER].seq.upper()
        want = np.array(["ACGT".index(c) if c in "ACGT" else 4 for c in text])
        np.testing.assert_array_equal(row.seq.values, want)
        lo = summit - OUTPUT_LEN // 2 - MAX_JITTER
        values = np.nan_to_num(np.array(plus.values(chrom, lo, lo + OUTPUT_LEN + 2 * MAX_JITTER), dtype=float))
        np.testing.assert_array_equal(row.signal.sel(track="0/+").values, values)


def test_missing_and_partial_stores_are_input_errors(store, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_dataset(tmp_path / "nope.zarr")
    (tmp_path / "half.zarr.partial").mkdir()
    with pytest.raises(InputError, match="resume"):
        open_dataset(tmp_path / "half.zarr")
