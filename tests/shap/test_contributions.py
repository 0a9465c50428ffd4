"""``bpnetz shap`` / ``bpnet-shap`` end to end on a tiny simulated experiment and an untrained tiny BPNet.

Independent checks: the scored windows' sequences equal pyfaidx reads at the written coordinates; the store and
the BED/FASTA routes give the same scores for the same loci (so controls are read and smoothed identically); the
bigWig holds the projected scores at the right bases; the reference's command line runs as written.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pyBigWig  # noqa: E402
import pyfaidx  # noqa: E402
import pytest  # noqa: E402

from bpnetz.cli.compat import bpnet_shap  # noqa: E402
from bpnetz.errors import InputError  # noqa: E402
from bpnetz.shap.contributions import contribution_scores  # noqa: E402
from tests.tiny_model import save_model_dir  # noqa: E402

INPUT_LEN, OUTPUT_LEN = 400, 200
PARAMS = {"input_len": INPUT_LEN, "output_profile_len": OUTPUT_LEN,
          "motif_module_params": {"filters": [8], "kernel_sizes": [5]},
          "syntax_module_params": {"num_dilation_layers": 2, "filters": 8, "kernel_size": 3},
          "profile_head_params": {"kernel_size": 5}}
BASES = {"A": 0, "C": 1, "G": 2, "T": 3}


@pytest.fixture(scope="module")
def setup(tiny_experiment, tmp_path_factory):
    from bpnetz.build.builder import build_store
    from bpnetz.store.reader import StoreReader

    root = tmp_path_factory.mktemp("shap")
    store = root / "store.zarr"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tiny_experiment)
        build_store("input_data.json", "genome.fa", "chrom.sizes", input_len=INPUT_LEN, output_len=OUTPUT_LEN,
                    max_jitter=16, output=store, progress=False)
    layout = StoreReader(store).layout
    model_dir = root / "models" / "model_split000"
    save_model_dir(model_dir, store, layout, PARAMS, {"val": ["chr2"], "test": ["chr1"]})
    return {"exp": tiny_experiment, "store": store, "model_dir": model_dir, "root": root}


def onehot_from_fasta(fasta: Path, chrom: str, start: int, length: int) -> np.ndarray:
    text = str(pyfaidx.Fasta(str(fasta))[chrom][start:start + length]).upper()
    out = np.zeros((length, 4), dtype=np.float32)
    for i, base in enumerate(text):
        if base in BASES:
            out[i, BASES[base]] = 1
    return out


@pytest.fixture(scope="module")
def store_run(setup):
    out = setup["root"] / "from_store"
    summary = contribution_scores(setup["model_dir"], output_dir=out, store=setup["store"], chroms=["chr1"],
                                  num_shuffles=4, generate_bigwigs=True,
                                  chrom_sizes=setup["exp"] / "chrom.sizes", progress=False)
    return out, summary


def test_store_scores_cover_the_sequences_at_their_coordinates(setup, store_run):
    out, summary = store_run
    assert summary.n_loci > 0
    for name in ("counts_scores.h5", "profile_scores.h5"):
        with h5py.File(out / name) as h5:
            assert set(h5) >= {"coords_chrom", "coords_start", "coords_end", "hyp_scores", "input_seqs"}
            chrom = h5["coords_chrom"].asstr()[:]
            start, end = h5["coords_start"][:], h5["coords_end"][:]
            assert h5["hyp_scores"].shape == (summary.n_loci, INPUT_LEN, 4)
            assert np.all(end - start == INPUT_LEN) and set(chrom) == {"chr1"}
            seqs = h5["input_seqs"][:]
            for i in range(0, summary.n_loci, 3):
                expected = onehot_from_fasta(setup["exp"] / "genome.fa", chrom[i], int(start[i]), INPUT_LEN)
                np.testing.assert_array_equal(seqs[i], expected)
            assert np.abs(h5["hyp_scores"][:]).sum() > 0


def test_bigwig_holds_projected_scores(setup, store_run):
    out, _ = store_run
    with h5py.File(out / "counts_scores.h5") as h5:
        chrom, start = h5["coords_chrom"].asstr()[0], int(h5["coords_start"][0])
        projected = (h5["hyp_scores"][0] * h5["input_seqs"][0]).sum(-1)
    with pyBigWig.open(str(out / "counts_scores.bw")) as bw:
        centre = INPUT_LEN // 2  # the window centre always belongs to its own locus
        values = np.nan_to_num(np.array(bw.values(chrom, start + centre - 10, start + centre + 10)))
    np.testing.assert_allclose(values, projected[centre - 10:centre + 10], rtol=1e-4, atol=1e-6)


def test_bed_route_equals_store_route(setup, store_run, monkeypatch):
    """The store route's scored-loci BED fed back through the FASTA route: same loci, same order, so the same
    seeded references; equal scores mean sequences and controls are read identically."""
    out, summary = store_run
    monkeypatch.chdir(setup["exp"])
    bed_out = setup["root"] / "from_bed"
    bed = contribution_scores(setup["model_dir"], output_dir=bed_out, bed_file=out / "peaks_valid_scores.bed",
                              reference_genome="genome.fa", input_data="input_data.json", num_shuffles=4,
                              progress=False)
    assert bed.n_loci == summary.n_loci
    with h5py.File(out / "counts_scores.h5") as a, h5py.File(bed_out / "counts_scores.h5") as b:
        np.testing.assert_array_equal(a["coords_start"][:], b["coords_start"][:])
        np.testing.assert_allclose(a["hyp_scores"][:], b["hyp_scores"][:], rtol=1e-4, atol=1e-6)


def test_reference_command_line_runs(setup, monkeypatch):
    monkeypatch.chdir(setup["exp"])
    out = setup["root"] / "reference_cli"
    code = bpnet_shap(["--reference-genome", "genome.fa", "--model", str(setup["model_dir"]),
                       "--bed-file", "data/peaks.bed", "--chroms", "chr1", "--output-dir", str(out),
                       "--input-seq-len", str(INPUT_LEN), "--control-len", str(OUTPUT_LEN), "--task-id", "0",
                       "--input-data", "input_data.json", "--generate-shap-bigWigs", "--chrom-sizes", "chrom.sizes",
                       "--num-shuffles", "2", "--sample", "5", "--quiet"])
    assert code == 0
    assert {p.name for p in out.iterdir()} >= {"counts_scores.h5", "profile_scores.h5", "peaks_valid_scores.bed",
                                               "counts_scores.bw", "profile_scores.bw"}


def test_bad_inputs_are_clear(setup, tmp_path, capsys):
    with pytest.raises(InputError, match="--reference-genome"):
        contribution_scores(setup["model_dir"], output_dir=tmp_path, bed_file="x.bed", progress=False)
    with pytest.raises(InputError, match="input length"):
        contribution_scores(setup["model_dir"], output_dir=tmp_path, store=setup["store"], expected_input_len=2114,
                            progress=False)
    assert bpnet_shap(["--model", str(tmp_path / "missing"), "--output-dir", str(tmp_path)]) == 2
    assert "model directory does not exist" in capsys.readouterr().err
