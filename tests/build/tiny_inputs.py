"""Hand-made tiny build inputs (a few-kb FASTA, bigWigs written with pyBigWig, narrowPeak/BED files, JSON).

Written independently of ``bpnetz simulate`` so the build tests do not depend on it. The experiment contains
the cases the builder must handle: IUPAC letters and lowercase in the FASTA, gaps in the bigWigs, peaks near
chromosome ends, a duplicate peak, a peak on a chromosome only chrom.sizes knows (absent from the FASTA), a
peak on a chromosome the bigWigs lack, and a plain 3-column background BED (midpoint-centred).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyBigWig

from bpnetz.build.options import BuildOptions

#: chromosomes of the FASTA and bigWigs; "chr3" is in the FASTA but not in the bigWigs; chrom.sizes adds "chrM".
GENOME_SIZES = {"chr1": 5000, "chr2": 4000, "chr3": 1500}
BIGWIG_CHROMS = ("chr1", "chr2")
SIZES_ONLY = {"chrM": 800}
INPUT_LEN, OUTPUT_LEN, MAX_JITTER = 200, 100, 10
IUPAC = "RYKMSWBDHV"


@dataclass
class TinyExperiment:
    root: Path
    fasta: Path
    chrom_sizes: Path
    input_data: Path
    bigwigs: dict[str, Path]
    peaks: Path
    background: Path
    genome: dict[str, str]
    #: expected rejection reason of particular peak file lines (1-based line -> reason prefix)
    expected_rejections: dict[int, str] = field(default_factory=dict)

    def build_args(self, output: Path | str, **extra: object) -> dict:
        """Keyword arguments of build_store for this experiment (``extra``: BuildOptions fields)."""
        options = {"input_len": INPUT_LEN, "output_len": OUTPUT_LEN, "max_jitter": MAX_JITTER, "workers": 1,
                   "progress": False, **extra}
        return {"input_data": self.input_data, "reference_genome": self.fasta, "chrom_sizes": self.chrom_sizes,
                "output": output, "options": BuildOptions(**options)}


def _genome(rng: np.random.Generator) -> dict[str, str]:
    genome = {}
    for chrom, size in GENOME_SIZES.items():
        letters = np.array(list("ACGT"))[rng.integers(0, 4, size)].astype("<U1")
        letters[rng.choice(size, size // 40, replace=False)] = "N"
        letters[rng.choice(size, size // 40, replace=False)] = np.array(list(IUPAC))[rng.integers(0, 10, size // 40)]
        soft = rng.integers(0, size - 300)
        letters[soft:soft + 200] = np.char.lower(letters[soft:soft + 200])
        genome[chrom] = "".join(letters)
    return genome


def write_fasta(path: Path, genome: dict[str, str], width: int = 60) -> None:
    with open(path, "w") as handle:
        for chrom, seq in genome.items():
            handle.write(f">{chrom} tiny test chromosome\n")
            handle.writelines(seq[i:i + width] + "\n" for i in range(0, len(seq), width))


def write_bigwig(path: Path, values: dict[str, np.ndarray], sizes: dict[str, int]) -> None:
    """Write per-base values; NaN positions are left out (gaps)."""
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(sizes.items()))
    for chrom in sizes:
        if chrom not in values:
            continue
        v = values[chrom]
        pos = np.flatnonzero(~np.isnan(v))
        if len(pos):
            bw.addEntries(chrom, pos.astype(np.int64).tolist(), values=v[pos].astype(float).tolist(), span=1)
    bw.close()


def _track(rng: np.random.Generator, lam: float, integer: bool) -> dict[str, np.ndarray]:
    values = {}
    for chrom in BIGWIG_CHROMS:
        v = rng.poisson(lam, GENOME_SIZES[chrom]).astype(np.float64)
        if not integer:
            v = v * 0.37 + rng.random(len(v))
        v[v == 0] = np.nan  # zero-count positions are gaps, as in count bigWigs
        gap = rng.integers(0, GENOME_SIZES[chrom] - 400)
        v[gap:gap + 300] = np.nan  # a long gap
        values[chrom] = v
    return values


def write_tiny_experiment(root: Path, *, seed: int = 0, integer_signal: bool = True, stranded: bool = True,
                          bias: bool = True, smoothing: list | None = None, n_peaks: int = 60) -> TinyExperiment:
    """Write the experiment under ``root`` and return its paths; relative paths in input_data.json are avoided."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    genome = _genome(rng)
    fasta = root / "genome.fa"
    write_fasta(fasta, genome)
    chrom_sizes = root / "chrom.sizes"
    chrom_sizes.write_text("".join(f"{c}\t{n}\n" for c, n in {**GENOME_SIZES, **SIZES_ONLY}.items()))
    bw_sizes = {c: GENOME_SIZES[c] for c in BIGWIG_CHROMS}

    names = ["plus", "minus"] if stranded else ["unstranded"]
    bigwigs = {}
    for name in names:
        bigwigs[name] = root / f"{name}.bw"
        write_bigwig(bigwigs[name], _track(rng, 1.5, integer_signal), bw_sizes)
    controls = ["control_plus", "control_minus"] if bias else []
    for name in controls:
        bigwigs[name] = root / f"{name}.bw"
        write_bigwig(bigwigs[name], _track(rng, 0.8, True), bw_sizes)

    half = INPUT_LEN // 2 + MAX_JITTER  # the sequence window reaches this far from the summit
    lines, expected = [], {}

    def peak(chrom: str, summit: int, reason: str | None = None) -> None:
        start = max(summit - 40, 0)
        lines.append(f"{chrom}\t{start}\t{start + 80}\tpeak{len(lines)}\t100\t.\t5.0\t-1\t-1\t{summit - start}")
        if reason:
            expected[len(lines) + 1] = reason  # +1: the file starts with a comment line

    for _ in range(n_peaks):
        chrom = str(rng.choice(BIGWIG_CHROMS))
        peak(chrom, int(rng.integers(half, GENOME_SIZES[chrom] - half)))
    peak("chr1", half - 1, "window_past_chrom_end")  # one base too close to the start
    peak("chr1", half)  # exactly fits
    peak("chr2", GENOME_SIZES["chr2"] - half)  # exactly fits at the end
    peak("chr2", GENOME_SIZES["chr2"] - half + 1, "window_past_chrom_end")
    first = lines[0].split("\t")
    peak(first[0], int(first[1]) + int(first[9]), "duplicate")
    peak("chr3", 700, "chrom_not_in_bigwig")
    peak("chrM", 400, "chrom_not_in_fasta")
    peak("chrUn_x", 400, "chrom_not_in_chrom_sizes")
    peaks = root / "peaks.narrowPeak"
    peaks.write_text("# tiny peaks\n" + "\n".join(lines) + "\n")

    background = root / "background.bed"
    rows = []
    for _ in range(n_peaks // 2):
        chrom = str(rng.choice(BIGWIG_CHROMS))
        mid = int(rng.integers(half, GENOME_SIZES[chrom] - half))
        rows.append(f"{chrom}\t{mid - 50}\t{mid + 50}")
    background.write_text("\n".join(rows) + "\n")

    task: dict = {"signal": {"source": [str(bigwigs[n]) for n in names]},
                  "loci": {"source": [str(peaks)]},
                  "background_loci": {"source": [str(background)], "ratio": 0.5}}
    if bias:
        task["bias"] = {"source": [str(bigwigs[n]) for n in controls],
                        "smoothing": smoothing if smoothing is not None else [None, [3.0, 21]]}
    input_data = root / "input_data.json"
    input_data.write_text(json.dumps({"0": task}, indent=2))
    return TinyExperiment(root=root, fasta=fasta, chrom_sizes=chrom_sizes, input_data=input_data, bigwigs=bigwigs,
                          peaks=peaks, background=background, genome=genome, expected_rejections=expected)
