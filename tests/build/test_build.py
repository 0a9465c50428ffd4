"""`bpnetz build` end to end on a hand-made tiny experiment, checked against direct pyfaidx / pyBigWig reads.

Blocks are shrunk (8-locus chunks, 32-locus shards) so that the ~90 loci span several Dask tasks.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import blake3
import numpy as np
import pyBigWig
import pyfaidx
import pytest
import zarr
from scipy.ndimage import gaussian_filter1d

from bpnetz.build import builder, regions
from bpnetz.build.builder import build_store, find_or_build_store
from bpnetz.build.options import BuildOptions
from bpnetz.cli import main as cli_main
from bpnetz.errors import InputError
from bpnetz.store import schema
from bpnetz.store.inspect import verify_store
from tests.build.tiny_inputs import (
    INPUT_LEN,
    MAX_JITTER,
    OUTPUT_LEN,
    write_bigwig,
    write_tiny_experiment,
)

SEQ_LEN = INPUT_LEN + 2 * MAX_JITTER
PROFILE_LEN = OUTPUT_LEN + 2 * MAX_JITTER
ARRAYS = ["seq", "signal", "bias", *schema.LOCUS_COORDS]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(schema, "CHUNK_LOCI", 8)
    monkeypatch.setattr(schema, "SHARD_LOCI", 32)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One experiment and its store, built with 3 blocks."""
    root = tmp_path_factory.mktemp("exp")
    experiment = write_tiny_experiment(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(schema, "CHUNK_LOCI", 8)
        mp.setattr(schema, "SHARD_LOCI", 32)
        summary = build_store(**experiment.build_args(root / "store.zarr"))
    return experiment, summary, root / "store.zarr"


def _arrays(path: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    return {name: group[name][:] for name in ARRAYS if name in group}


def _coords(path: Path) -> tuple[list[str], np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    return [str(c) for c in group["chrom"][:]], np.asarray(group["summit"][:])


def _codes(text: str) -> np.ndarray:
    return np.array(["ACGT".find(ch) if ch in "ACGT" else 4 for ch in text.upper()], dtype=np.uint8)


def _direct(path: Path, chrom: str, lo: int, hi: int) -> np.ndarray:
    """pyBigWig values over [lo, hi) with gaps (and positions outside the chromosome) as 0."""
    bw = pyBigWig.open(str(path))
    out = np.zeros(hi - lo)
    a, b = max(lo, 0), min(hi, bw.chroms(chrom))
    out[a - lo:b - lo] = np.nan_to_num(np.array(bw.values(chrom, a, b), dtype=float), nan=0.0)
    return out


def test_summary_and_layout(built):
    experiment, summary, path = built
    assert summary.n_loci == 92 and summary.counts == {"peak": {"0": 62}, "background": {"0": 30}}
    assert summary.blocks_built == 3 and summary.dtypes == {"signal": "uint8", "bias": "float32"}
    assert summary.bytes_on_disk > 0 and summary.compression_ratio > 1
    text = summary.format()
    assert "92 loci" in text and "rejected 6 loci" in text and "loci/s" in text and "compression" in text
    assert not Path(str(path) + ".partial").exists()
    group = zarr.open_group(str(path), mode="r")
    assert group.metadata.zarr_format == 3
    layout = schema.layout(group)
    assert [t.name for t in layout.tracks] == ["0/+", "0/-"] and [t.strand for t in layout.tracks] == ["+", "-"]
    assert [(t.strand, t.smoothing) for t in layout.bias_tracks] == [("+", None), ("-", None), ("-", (3.0, 21))]
    # counts of a few reads fit uint8; a smoothed control track makes the bias fractional
    assert max(_bigwig_max(experiment.bigwigs[name]) for name in ("plus", "minus")) < 256
    assert group["seq"].dtype == np.uint8 and group["signal"].dtype == np.uint8 and group["bias"].dtype == np.float32
    assert group["seq"].shards == (32, SEQ_LEN) and group["seq"].chunks == (8, SEQ_LEN)
    assert group["signal"].chunks == (8, PROFILE_LEN, 2)
    assert group["signal"].compressors[0].to_dict()["configuration"]["cname"] == "lz4"
    assert group["bias"].compressors[0].to_dict()["configuration"]["cname"] == "zstd"  # float32: byte shuffle


def test_seq_equals_fasta_codes(built):
    experiment, _, path = built
    chroms, summits = _coords(path)
    seq = _arrays(path)["seq"]
    fasta = pyfaidx.Fasta(str(experiment.fasta))
    saw_iupac = False
    for i, (chrom, summit) in enumerate(zip(chroms, summits, strict=True)):
        lo = summit - INPUT_LEN // 2 - MAX_JITTER
        text = fasta[chrom][lo:lo + SEQ_LEN].seq
        np.testing.assert_array_equal(seq[i], _codes(text), err_msg=f"row {i} {chrom}:{summit}")
        saw_iupac |= any(ch in "RYKMSWBDHV" for ch in text.upper())
    assert saw_iupac  # IUPAC letters occur and were coded N by the equality above


def test_signal_and_bias_equal_bigwig_values(built):
    experiment, _, path = built
    chroms, summits = _coords(path)
    arrays = _arrays(path)
    bw = experiment.bigwigs
    for i, (chrom, summit) in enumerate(zip(chroms, summits, strict=True)):
        lo = summit - OUTPUT_LEN // 2 - MAX_JITTER
        hi = lo + PROFILE_LEN
        for k, name in enumerate(["plus", "minus"]):
            np.testing.assert_array_equal(arrays["signal"][i, :, k], _direct(bw[name], chrom, lo, hi))
        for k, name in enumerate(["control_plus", "control_minus"]):
            np.testing.assert_array_equal(arrays["bias"][i, :, k], _direct(bw[name], chrom, lo, hi))
        radius = 21 // 2
        raw = _direct(bw["control_minus"], chrom, lo - radius, hi + radius)
        smooth = gaussian_filter1d(raw, 3.0, truncate=radius / 3.0)[radius:-radius]
        np.testing.assert_allclose(arrays["bias"][i, :, 2], smooth, rtol=1e-5, atol=1e-6)


def test_metadata_records_totals_sources_and_genome(built):
    experiment, _, path = built
    meta = schema.metadata(zarr.open_group(str(path), mode="r"))
    arrays = _arrays(path)
    assert meta["totals"]["signal"] == {"0/+": int(arrays["signal"][..., 0].sum()),
                                        "0/-": int(arrays["signal"][..., 1].sum())}
    assert meta["genome"]["md5"] == hashlib.md5(experiment.fasta.read_bytes()).hexdigest()
    assert meta["genome"]["chroms"] == {"chr1": 5000, "chr2": 4000, "chr3": 1500}
    by_path = {s["path"]: s for s in meta["sources"]}
    plus = by_path[str(experiment.bigwigs["plus"])]
    assert plus["size"] == experiment.bigwigs["plus"].stat().st_size
    assert plus["checksum"] == f"blake3:{blake3.blake3(experiment.bigwigs['plus'].read_bytes()).hexdigest()}"
    assert meta["configs"]["input_data"] == json.loads(experiment.input_data.read_text())
    assert meta["n_loci"] == 92 and meta["n_rejected"] == 6 and meta["checksum"].startswith("blake2b128:")


def test_second_build_reads_checksums_from_the_user_cache(built, tmp_path, monkeypatch):
    from bpnetz.store import checksum

    experiment, _, path = built
    monkeypatch.setenv(checksum.CACHE_ENV, str(tmp_path / "checksums.json"))
    monkeypatch.setattr(checksum, "SETTLED_SECONDS", 0.0)  # the experiment's files were written moments ago
    hashed = []
    original = checksum.file_checksum
    monkeypatch.setattr(checksum, "file_checksum", lambda p, **k: hashed.append(p) or original(p, **k))
    build_store(**experiment.build_args(tmp_path / "first.zarr"))
    n_sources = len(hashed)
    build_store(**experiment.build_args(tmp_path / "second.zarr"))
    assert n_sources >= 6 and len(hashed) == n_sources  # every source hashed by the first build only
    metas = [schema.metadata(zarr.open_group(str(p), mode="r")) for p in (path, tmp_path / "second.zarr")]
    assert metas[1]["sources"] == metas[0]["sources"] and metas[1]["genome"] == metas[0]["genome"]
    assert metas[1]["checksum"] == metas[0]["checksum"]


def _input_lines(path: Path) -> set[tuple[str, int]]:
    return {(str(path), n) for n, line in enumerate(path.read_text().splitlines(), 1)
            if line.strip() and not line.startswith("#")}


def test_every_input_locus_is_stored_or_rejected(built):
    experiment, _, path = built
    group = zarr.open_group(str(path), mode="r")
    sources = [s["path"] for s in schema.metadata(group)["sources"]]
    stored = [(sources[f], int(n)) for f, n in zip(group["source_file"][:], group["source_line"][:], strict=True)]
    rows = [line.split("\t") for line in (path / "rejected_loci.bed").read_text().splitlines()[1:]]
    rejected = {(r[6], int(r[7])): r[8] for r in rows}
    expected = _input_lines(experiment.peaks) | _input_lines(experiment.background)
    assert len(stored) == len(set(stored)) and not set(stored) & set(rejected)
    assert set(stored) | set(rejected) == expected
    peaks = str(experiment.peaks)
    assert {line: rejected[(peaks, line)] for line in experiment.expected_rejections} == {
        line: reason + (":plus.bw" if reason == "chrom_not_in_bigwig" else "")
        for line, reason in experiment.expected_rejections.items()}
    chroms, summits = _coords(path)
    sizes = {"chr1": 5000, "chr2": 4000}
    for chrom, summit in zip(chroms, summits, strict=True):  # every stored window lies inside its chromosome
        assert summit - INPUT_LEN // 2 - MAX_JITTER >= 0 and summit + INPUT_LEN // 2 + MAX_JITTER <= sizes[chrom]


def _interrupted_build(monkeypatch, args: dict) -> Path:
    """Run a build that dies just before its final rename; returns the partial store."""
    def crash(*_args, **_kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        mp.setattr(builder, "_finish", crash)
        with pytest.raises(KeyboardInterrupt):
            build_store(**args)
    return Path(str(args["output"]) + builder.PARTIAL_SUFFIX)


def test_resume_after_interruption_gives_identical_arrays(built, tmp_path, monkeypatch):
    experiment, _, reference = built
    args = experiment.build_args(tmp_path / "store.zarr")
    partial = _interrupted_build(monkeypatch, args)
    assert not (tmp_path / "store.zarr").exists()
    with pytest.raises(InputError, match="partial"):
        schema.open_group(tmp_path / "store.zarr")
    assert sorted(p.name for p in (partial / ".blocks").iterdir()) == ["0.json", "1.json", "2.json"]
    # the interruption also lost the last block: its marker and its shard of every array
    (partial / ".blocks" / "2.json").unlink()
    for name in ("seq", "signal", "bias"):
        shutil.rmtree(partial / name / "c" / "2")
    (partial / regions.SPILL_DIR).mkdir()  # a killed run's worker left its region's chunks
    (partial / regions.SPILL_DIR / "0.bin").write_bytes(b"stale chunks")
    built_chunks = []
    original = builder.build_region
    monkeypatch.setattr(builder, "build_region", lambda *a: built_chunks.extend(a[4]) or original(*a))
    summary = build_store(**args)
    # only the lost shard's chunks (8 rows each, 4 to a shard) are read again
    assert sorted(built_chunks) == [8, 9, 10, 11]
    assert summary.blocks_resumed == 2 and summary.loci_built == 92 - 64
    got, want = _arrays(tmp_path / "store.zarr"), _arrays(reference)
    for name in ARRAYS:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    meta = schema.metadata(zarr.open_group(str(tmp_path / "store.zarr"), mode="r"))
    assert meta["totals"] == schema.metadata(zarr.open_group(str(reference), mode="r"))["totals"]
    assert not (tmp_path / "store.zarr" / ".blocks").exists()
    assert not (tmp_path / "store.zarr" / regions.SPILL_DIR).exists()


def test_a_track_left_to_pybigwig_gives_the_same_store(built, tmp_path, monkeypatch):
    """A bigWig the numpy reader does not take (open_reader None: a big-endian file) is read by pyBigWig's float
    windows while the other tracks are read together: the arrays equal the all-numpy build's."""
    experiment, _, reference = built
    monkeypatch.setattr(schema, "CHUNK_LOCI", 8)
    monkeypatch.setattr(schema, "SHARD_LOCI", 32)
    left = str(experiment.bigwigs["minus"])
    reader = builder.open_reader
    left_out = []
    monkeypatch.setattr(builder, "open_reader",
                        lambda path: left_out.append(path) if str(path) == left else reader(path))
    build_store(**experiment.build_args(tmp_path / "mixed.zarr"))
    assert left_out  # the file was left to pyBigWig
    got, want = _arrays(tmp_path / "mixed.zarr"), _arrays(reference)
    for name in ARRAYS:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    meta = [schema.metadata(zarr.open_group(str(p), mode="r")) for p in (tmp_path / "mixed.zarr", reference)]
    assert meta[0]["totals"] == meta[1]["totals"]


def test_partial_of_other_arguments_is_started_over(built, tmp_path, monkeypatch, capsys):
    experiment, _, _ = built
    _interrupted_build(monkeypatch, experiment.build_args(tmp_path / "store.zarr", max_jitter=5))
    summary = build_store(**experiment.build_args(tmp_path / "store.zarr"))
    assert summary.blocks_resumed == 0 and any("starting over" in n for n in summary.notices)
    assert zarr.open_group(str(tmp_path / "store.zarr"), mode="r")["seq"].shape == (92, SEQ_LEN)


def test_blocks_written_before_the_build_key_are_started_over(built, tmp_path, monkeypatch):
    """A build killed after its blocks but before its sources' checksums were recorded (they are hashed while the
    blocks are written) leaves a partial store without a build key: a rerun cannot tell whose blocks they are and
    starts over."""
    experiment, _, reference = built
    args = experiment.build_args(tmp_path / "store.zarr")

    def killed(self):
        raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        mp.setattr(builder.ResumeMark, "write", killed)
        with pytest.raises(KeyboardInterrupt):
            build_store(**args)
    partial = Path(str(args["output"]) + builder.PARTIAL_SUFFIX)
    assert list((partial / ".blocks").iterdir())  # killed as the first finished block would have marked it
    assert builder.BUILD_ATTR not in dict(zarr.open_group(str(partial), mode="r").attrs)
    summary = build_store(**args)
    assert summary.blocks_resumed == 0 and any("no build key" in n for n in summary.notices)
    got, want = _arrays(tmp_path / "store.zarr"), _arrays(reference)
    for name in ARRAYS:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    meta = schema.metadata(zarr.open_group(str(tmp_path / "store.zarr"), mode="r"))
    assert meta["build_key"] == dict(zarr.open_group(str(tmp_path / "store.zarr"), mode="r").attrs)[
        builder.BUILD_ATTR]["key"]


def _bigwig_max(path: Path) -> float:
    """The largest value of a bigWig, from its per-chromosome statistics."""
    bw = pyBigWig.open(str(path))
    return max(bw.stats(chrom, type="max", exact=True)[0] or 0 for chrom in bw.chroms())


def test_non_integer_signal_is_float32(tmp_path, monkeypatch):
    experiment = write_tiny_experiment(tmp_path / "exp", integer_signal=False, bias=False)
    # the sample said uint8; the blocks find fractions and the build restarts as float32
    monkeypatch.setattr(builder, "_plan_dtypes", lambda inputs: {"signal": "uint8", "bias": "float32"})
    summary = build_store(**experiment.build_args(tmp_path / "store.zarr"))
    assert summary.dtypes == {"signal": "float32"} and any("float32" in n for n in summary.notices)
    group = zarr.open_group(str(tmp_path / "store.zarr"), mode="r")
    assert group["signal"].dtype == np.float32 and "bias" not in group
    chroms, summits = _coords(tmp_path / "store.zarr")
    signal = group["signal"][:]
    for i in range(0, len(summits), 7):
        lo = summits[i] - OUTPUT_LEN // 2 - MAX_JITTER
        np.testing.assert_allclose(signal[i, :, 1], _direct(experiment.bigwigs["minus"], chroms[i], lo,
                                                            lo + PROFILE_LEN), rtol=1e-6)


def test_counts_get_the_narrowest_integer_dtype_that_holds_them(tmp_path, monkeypatch):
    experiment = write_tiny_experiment(tmp_path / "exp", smoothing=[None, None])
    scaled = {name: {c: np.asarray(pyBigWig.open(str(experiment.bigwigs[name])).values(c, 0, n), dtype=float) * 150
                     for c, n in pyBigWig.open(str(experiment.bigwigs[name])).chroms().items()}
              for name in ("plus", "minus")}
    for name, values in scaled.items():  # counts up to a few thousand: more than uint8 holds
        write_bigwig(experiment.bigwigs[name], values, pyBigWig.open(str(experiment.bigwigs["control_plus"])).chroms())
    assert 255 < max(_bigwig_max(experiment.bigwigs[n]) for n in scaled) < 65536
    summary = build_store(**experiment.build_args(tmp_path / "store.zarr"))
    assert summary.dtypes == {"signal": "uint16", "bias": "uint8"} and not summary.notices
    # a plan that is too narrow restarts the build one step wider; the values stay exact. Two worker processes:
    # the blocks' exception reaches the parent through pickling
    monkeypatch.setattr(builder, "_plan_dtypes", lambda inputs: {"signal": "uint8", "bias": "uint8"})
    summary = build_store(**experiment.build_args(tmp_path / "narrow.zarr", workers=2))
    assert summary.blocks_built > 1
    assert summary.dtypes["signal"] == "uint16" and any("uint16" in n for n in summary.notices)
    group = zarr.open_group(str(tmp_path / "narrow.zarr"), mode="r")
    chroms, summits = _coords(tmp_path / "narrow.zarr")
    signal, bias = group["signal"][:], group["bias"][:]
    for i in range(0, len(summits), 5):
        lo = summits[i] - OUTPUT_LEN // 2 - MAX_JITTER
        np.testing.assert_array_equal(signal[i, :, 0], _direct(experiment.bigwigs["plus"], chroms[i], lo,
                                                               lo + PROFILE_LEN))
        np.testing.assert_array_equal(bias[i, :, 1], _direct(experiment.bigwigs["control_minus"], chroms[i], lo,
                                                             lo + PROFILE_LEN))
    assert verify_store(tmp_path / "narrow.zarr").ok


def test_a_narrow_dtype_survives_the_trip_from_a_worker_process():
    """Block tasks run in worker processes (or on cluster workers): their exception is pickled to the parent,
    which widens the dtype it names."""
    import pickle

    err = pickle.loads(pickle.dumps(builder.TrackDtypeTooNarrow("bias", "c.bw", "float32")))
    assert (type(err), err.array, err.source, err.needed) == (builder.TrackDtypeTooNarrow, "bias", "c.bw", "float32")
    assert str(err) == "c.bw holds values that need float32"


def test_blacklist_and_chroms(tmp_path):
    experiment = write_tiny_experiment(tmp_path / "exp", bias=False)
    blacklist = tmp_path / "bl.bed"
    blacklist.write_text("chr1\t0\t2500\n")
    summary = build_store(**experiment.build_args(tmp_path / "store.zarr", blacklist=blacklist,
                                                  chroms=["chr1", "chr3"]))
    chroms, summits = _coords(tmp_path / "store.zarr")
    assert set(chroms) == {"chr1"} and (summits - INPUT_LEN // 2 - MAX_JITTER >= 2500).all()
    assert summary.rejected["blacklist_overlap"] > 0 and summary.rejected["chrom_not_selected"] > 0


def test_find_or_build_store_reuses_the_cache(built, tmp_path, monkeypatch):
    experiment, _, _ = built
    args = experiment.build_args(None)
    del args["output"]
    first = find_or_build_store(tmp_path / "cache", **args)
    assert schema.metadata(zarr.open_group(str(first), mode="r"))["n_loci"] == 92
    monkeypatch.setattr(builder, "_build", lambda *a, **k: pytest.fail("rebuilt a cached store"))
    assert find_or_build_store(tmp_path / "cache", **args) == first


def test_distributed_scheduler_builds_the_same_store(built, tmp_path):
    distributed = pytest.importorskip("distributed")
    experiment, _, reference = built
    planned = []
    original = builder.regions_mod.plan_regions
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(builder.regions_mod, "plan_regions", lambda *a: planned.append(a[-1]) or original(*a))
        with distributed.LocalCluster(n_workers=3, threads_per_worker=1, processes=False,
                                      dashboard_address=None) as c:
            # no --workers: the regions are planned for the cluster's 3 workers, not this machine's cores
            build_store(**experiment.build_args(tmp_path / "store.zarr", scheduler=c.scheduler_address, workers=None))
    assert planned == [3]
    got, want = _arrays(tmp_path / "store.zarr"), _arrays(reference)
    for name in ARRAYS:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


# ------------------------------------------------------------------------------------------------- bad inputs


def _cli_build(experiment, output: Path, *extra: str) -> list[str]:
    return ["build", "--input-data", str(experiment.input_data), "--reference-genome", str(experiment.fasta),
            "--chrom-sizes", str(experiment.chrom_sizes), "--input-seq-len", str(INPUT_LEN), "--output-len",
            str(OUTPUT_LEN), "--max-jitter", str(MAX_JITTER), "--output", str(output), "--workers", "1",
            "--quiet", *extra]


def _rename_chroms(path: Path, strip: str = "chr") -> None:
    path.write_text("".join(line.replace(strip, "", 1) + "\n" for line in path.read_text().splitlines()))


def _break_missing_fasta(e):
    e.fasta.unlink()
    return "genome.fa"


def _break_peaks_without_summit(e):
    lines = e.peaks.read_text().splitlines()
    lines[3] = "\t".join(lines[3].split("\t")[:6])
    e.peaks.write_text("\n".join(lines) + "\n")
    return "peaks.narrowPeak: line 4"


def _break_chrom_sizes_names(e):
    _rename_chroms(e.chrom_sizes)
    return "chrom.sizes"


def _break_bigwig_names(e):
    write_bigwig(e.bigwigs["minus"], {"1": np.ones(5000)}, {"1": 5000, "2": 4000})
    return "minus.bw"


def _break_json_key(e):
    data = json.loads(e.input_data.read_text())
    data["0"]["signals"] = data["0"].pop("signal")
    e.input_data.write_text(json.dumps(data))
    return "input_data.json"


def _break_no_data_on_used_chroms(e):
    write_bigwig(e.bigwigs["plus"], {"chr2": np.ones(4000)}, {"chr1": 5000, "chr2": 4000})
    return "plus.bw"  # with --chroms chr1 below


def _break_all_windows_empty(e):
    # values only at chr1:0-5, which no profile window reaches (windows start at summit - 60 >= 50)
    write_bigwig(e.bigwigs["minus"], {"chr1": np.r_[np.ones(5), np.full(4995, np.nan)]},
                 {"chr1": 5000, "chr2": 4000})
    return "minus.bw"


def _break_not_a_bigwig(e):
    e.bigwigs["plus"].write_text("plain text\n")
    return "plus.bw"


def _break_chrom_length(e):
    e.chrom_sizes.write_text(e.chrom_sizes.read_text().replace("chr2\t4000", "chr2\t4100"))
    return "chrom.sizes: chromosome 'chr2' has length 4100"


def _break_unknown_chroms_argument(e):
    return "'chr9'"  # with --chroms chr1 chr9 below


EXTRA_ARGS = {_break_no_data_on_used_chroms: ["--chroms", "chr1"],
              _break_unknown_chroms_argument: ["--chroms", "chr1", "chr9"]}


@pytest.mark.parametrize("breaker", [_break_missing_fasta, _break_peaks_without_summit, _break_chrom_sizes_names,
                                     _break_bigwig_names, _break_json_key, _break_no_data_on_used_chroms,
                                     _break_all_windows_empty, _break_not_a_bigwig, _break_chrom_length,
                                     _break_unknown_chroms_argument])
def test_bad_inputs_exit_2_with_one_paragraph_naming_the_file(tmp_path, capsys, breaker):
    experiment = write_tiny_experiment(tmp_path / "exp", bias=False)
    expected = breaker(experiment)
    extra = EXTRA_ARGS.get(breaker, [])
    rc = cli_main(_cli_build(experiment, tmp_path / "store.zarr", *extra))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and "Traceback" not in err and expected in err
    assert err.strip().count("\n") == 0  # one paragraph
    assert not (tmp_path / "store.zarr").exists()


def test_existing_store_needs_overwrite(built, tmp_path, capsys):
    experiment, _, _ = built
    output = tmp_path / "store.zarr"
    assert cli_main(_cli_build(experiment, output)) == 0
    sentinel = output / "sentinel"
    sentinel.write_text("old store")
    assert cli_main(_cli_build(experiment, output)) == 2
    assert "--overwrite" in capsys.readouterr().err and sentinel.exists()
    assert cli_main(_cli_build(experiment, output, "--overwrite")) == 0
    assert not sentinel.exists() and schema.metadata(zarr.open_group(str(output), mode="r"))["n_loci"] == 92


# ------------------------------------------------------------------------- a `bpnetz simulate` experiment


def test_simulated_two_task_experiment_matches_its_sources(make_experiment, tmp_path, monkeypatch):
    """200 random loci of a store of a simulated experiment equal direct reads of every source."""
    experiment = make_experiment(tasks=2, bias_smoothing=(4.0, 31))
    monkeypatch.chdir(experiment)  # input_data.json paths are relative to the experiment
    spec = json.loads(Path("input_data.json").read_text())
    lengths = {"input_len": 400, "output_len": 200, "max_jitter": 16}
    summary = build_store("input_data.json", "genome.fa", "chrom.sizes", tmp_path / "s.zarr",
                          BuildOptions(workers=2, progress=False, **lengths))
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    layout = schema.layout(group)
    assert [t.name for t in layout.tracks] == ["0/+", "0/-", "1/+", "1/-"]
    assert [t.smoothing for t in layout.bias_tracks].count((4.0, 31)) == len(layout.bias_tracks) // 2
    # (task, file, line): tasks may share a loci file
    sources = [s["path"] for s in schema.metadata(group)["sources"]]
    stored = {(str(t), sources[f], int(n))
              for t, f, n in zip(group["task"][:], group["source_file"][:], group["source_line"][:], strict=True)}
    rows = [line.split("\t") for line in (tmp_path / "s.zarr" / "rejected_loci.bed").read_text().splitlines()[1:]]
    rejected = {(r[4], r[6], int(r[7])) for r in rows}
    expected = {(key, *line) for key, task in spec.items()
                for p in task["loci"]["source"] + task.get("background_loci", {}).get("source", [])
                for line in _input_lines(Path(p).resolve())}
    assert stored | rejected == expected
    assert summary.n_loci == len(stored) and not stored & rejected

    chroms, summits = _coords(tmp_path / "s.zarr")
    seq, signal, bias = group["seq"][:], group["signal"][:], group["bias"][:]
    fasta = pyfaidx.Fasta("genome.fa")
    in_len, out_len, jitter = lengths["input_len"], lengths["output_len"], lengths["max_jitter"]
    for i in np.random.default_rng(0).choice(len(summits), min(200, len(summits)), replace=False):
        chrom, summit = chroms[i], int(summits[i])
        lo = summit - in_len // 2 - jitter
        np.testing.assert_array_equal(seq[i], _codes(fasta[chrom][lo:lo + in_len + 2 * jitter].seq))
        lo = summit - out_len // 2 - jitter
        hi = lo + out_len + 2 * jitter
        for k, track in enumerate(layout.tracks):
            np.testing.assert_array_equal(signal[i, :, k], _direct(Path(track.source), chrom, lo, hi))
        for k, track in enumerate(layout.bias_tracks):
            if track.smoothing is None:
                np.testing.assert_array_equal(bias[i, :, k], _direct(Path(track.source), chrom, lo, hi))
            else:
                sigma, window = track.smoothing
                r = window // 2
                raw = _direct(Path(track.source), chrom, lo - r, hi + r)
                want = gaussian_filter1d(raw, sigma, truncate=r / sigma)[r:-r]
                np.testing.assert_allclose(bias[i, :, k], want, rtol=1e-5, atol=1e-6)
