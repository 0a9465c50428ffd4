"""A hand-made tiny experiment (FASTA + bigWigs) and a store of it written directly with zarr per schema.py.

Independent of the store builder: the loader tests compare what the loader yields with direct pyfaidx/pyBigWig
reads of the same files. Two tasks: task 0 stranded (+/-) with a stranded control, task 1 unstranded with an
unstranded control; peaks and background loci on four chromosomes; the store rows are shuffled and chunked in
small blocks so that no reader can rely on row order or on one chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyBigWig

from bpnetz.genome import sequence
from bpnetz.store import schema

CHROM_SIZES = {"chr1": 1400, "chr2": 1100, "chr3": 1000, "chr4": 900}
INPUT_LEN, OUTPUT_LEN, MAX_JITTER = 40, 20, 6
CHUNK, SHARD = 8, 32
PEAKS_PER_CHROM, BACKGROUNDS_PER_CHROM = 4, 6
BACKGROUND_RATIO = {"0": 0.5, "1": 1.0}
#: signal files (name, task, strand) in layout order; swap of + and - : 0<->1, 2 stays.
SIGNALS = [("a_plus", 0, "+"), ("a_minus", 0, "-"), ("b", 1, ".")]
BIASES = [("ctl_a_plus", 0, "+"), ("ctl_a_minus", 0, "-"), ("ctl_b", 1, ".")]


@dataclass
class TinyStore:
    path: Path
    fasta: Path
    bigwigs: dict[str, Path]
    loci: list[dict]  # row-ordered: chrom, summit, kind, task
    layout: schema.StoreLayout


def _write_bigwig(path: Path, values: dict[str, np.ndarray]) -> None:
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(CHROM_SIZES.items()))
    for chrom, v in values.items():
        bw.addEntries(chrom, 0, values=[float(x) for x in v], span=1, step=1)
    bw.close()


def _genome(rng: np.random.Generator) -> dict[str, str]:
    genome = {}
    for chrom, size in CHROM_SIZES.items():
        seq = np.array(list("ACGT"))[rng.integers(0, 4, size)]
        seq[rng.choice(size, size // 50, replace=False)] = "N"
        soft = rng.integers(0, size - 100)
        seq[soft:soft + 80] = np.char.lower(seq[soft:soft + 80])
        genome[chrom] = "".join(seq)
    return genome


def make_tiny_store(tmp: Path, *, seed: int = 7, with_bias: bool = True) -> TinyStore:
    """Write genome.fa, the bigWigs and store.zarr under ``tmp``."""
    import zarr

    rng = np.random.default_rng(seed)
    genome = _genome(rng)
    fasta = tmp / "genome.fa"
    fasta.write_text("".join(f">{c}\n{s}\n" for c, s in genome.items()))
    tracks = {name: {c: rng.poisson(2.0 if "ctl" not in name else 1.0, size).astype(float) * (1 + (name == "b"))
                     for c, size in CHROM_SIZES.items()} for name, _, _ in SIGNALS + BIASES}
    bigwigs = {}
    for name, values in tracks.items():
        bigwigs[name] = tmp / f"{name}.bw"
        _write_bigwig(bigwigs[name], values)

    loci = []
    margin = INPUT_LEN // 2 + MAX_JITTER + 5
    for chrom, size in CHROM_SIZES.items():
        for task in (0, 1):
            for kind, n in ((schema.KIND_PEAK, PEAKS_PER_CHROM), (schema.KIND_BACKGROUND, BACKGROUNDS_PER_CHROM)):
                for summit in rng.choice(np.arange(margin, size - margin), n, replace=False):
                    loci.append({"chrom": chrom, "summit": int(summit), "kind": kind, "task": task})
    loci = [loci[i] for i in rng.permutation(len(loci))]

    bias_tracks = BIASES if with_bias else []
    lay = schema.StoreLayout(
        input_len=INPUT_LEN, output_len=OUTPUT_LEN, max_jitter=MAX_JITTER, tasks=["0", "1"],
        tracks=[schema.Track(n, t, s, str(bigwigs[n])) for n, t, s in SIGNALS],
        bias_tracks=[schema.Track(n, t, s, str(bigwigs[n])) for n, t, s in bias_tracks],
        background_ratio=dict(BACKGROUND_RATIO))
    n = len(loci)
    seq = np.zeros((n, lay.seq_len), np.uint8)
    signal = np.zeros((n, lay.profile_len, lay.n_tracks), np.int32)
    bias = np.zeros((n, lay.profile_len, lay.n_bias), np.float32)
    for i, locus in enumerate(loci):
        s0, s1 = lay.seq_window(locus["summit"])
        seq[i] = sequence.encode(genome[locus["chrom"]][s0:s1])
        p0, p1 = lay.profile_window(locus["summit"])
        for k, (name, _, _) in enumerate(SIGNALS):
            signal[i, :, k] = tracks[name][locus["chrom"]][p0:p1]
        for k, (name, _, _) in enumerate(bias_tracks):
            bias[i, :, k] = tracks[name][locus["chrom"]][p0:p1]

    path = tmp / "store.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    arrays = {"seq": (seq, schema.SEQ_DIMS), "signal": (signal, schema.TRACK_DIMS)}
    if with_bias:
        arrays["bias"] = (bias, schema.BIAS_DIMS)
    for name, (data, dims) in arrays.items():
        arr = group.create_array(name, shape=data.shape, dtype=data.dtype, chunks=(CHUNK, *data.shape[1:]),
                                 shards=(SHARD, *data.shape[1:]), dimension_names=dims)
        arr[:] = data
    coords = {"chrom": [x["chrom"] for x in loci], "start": [x["summit"] - 50 for x in loci],
              "end": [x["summit"] + 50 for x in loci], "summit": [x["summit"] for x in loci],
              "kind": [x["kind"] for x in loci], "task": [x["task"] for x in loci],
              "name": [f"locus{i}" for i in range(n)], "source_file": [x["task"] for x in loci],
              "source_line": list(range(1, n + 1))}
    for name, dtype in schema.LOCUS_COORDS.items():
        values = np.array(coords[name], dtype=object if dtype is str else dtype)
        arr = group.create_array(name, shape=(n,), dtype=str if dtype is str else dtype, chunks=(SHARD,),
                                 dimension_names=(schema.LOCUS_DIM,))
        arr[:] = values
    group.attrs[schema.ATTR_KEY] = {"schema_version": schema.SCHEMA_VERSION, "layout": lay.to_dict(),
                                    "n_loci": n, "checksum": f"tiny-{seed}"}
    return TinyStore(path=path, fasta=fasta, bigwigs=bigwigs, loci=loci, layout=lay)
