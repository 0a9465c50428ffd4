"""Synthetic contribution-score files with planted motifs, for the modisco and hits tests (no model needed).

Random uniform sequences get one or two non-overlapping instances of two known motifs (each instance sampled
from its PWM, on a random strand). The hypothetical contributions at an instance are the motif's per-base
log-odds against a uniform background (oriented like the instance), scaled by a random amplitude; everywhere
else they are small Gaussian noise. The planted positions are returned as the independent truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

BASES = "ACGT"


def _pwm(consensus: str, degenerate: dict[int, str]) -> np.ndarray:
    """A (W, 4) PWM: 0.85 on the consensus base, or split evenly between the bases given for a position."""
    pwm = np.full((len(consensus), 4), 0.05)
    for i, base in enumerate(consensus):
        pwm[i, BASES.index(base)] = 0.85
    for i, bases in degenerate.items():
        pwm[i] = 0.02
        for b in bases:
            pwm[i, BASES.index(b)] = (1 - 0.02 * (4 - len(bases))) / len(bases)
    return pwm / pwm.sum(axis=1, keepdims=True)


# Two non-palindromic motifs with no similarity to each other in either orientation.
KNOWN_MOTIFS: dict[str, np.ndarray] = {
    "motifA": _pwm("GGGATTACAT", {4: "AT"}),
    "motifB": _pwm("AACCGTTGCA", {2: "CG", 7: "GT"}),
}


@dataclass
class PlantedSite:
    """One planted motif instance: locus index, window-relative start, motif name and strand."""

    locus: int
    start: int
    motif: str
    strand: str


def reverse_complement(pwm: np.ndarray) -> np.ndarray:
    """Reverse complement of a (W, 4) ACGT matrix."""
    return pwm[::-1, ::-1]


def make_scores(path: Path, n_loci: int = 400, length: int = 200, seed: int = 0,
                chrom: str = "chrSynthetic_long_name", locus_spacing: int = 1000) -> list[PlantedSite]:
    """Write a reference-format score h5 (coords_*, hyp_scores, input_seqs) and return the planted sites.

    Locus i spans [i * locus_spacing, i * locus_spacing + length) on `chrom`.
    """
    rng = np.random.default_rng(seed)
    seqs = rng.integers(0, 4, size=(n_loci, length))
    hyp = rng.normal(0.0, 0.1, size=(n_loci, length, 4))
    sites: list[PlantedSite] = []
    names = list(KNOWN_MOTIFS)
    for locus in range(n_loci):
        n_sites = int(rng.integers(1, 3))
        occupied = np.zeros(length, dtype=bool)
        for _ in range(n_sites):
            name = names[int(rng.integers(len(names)))]
            strand = "+" if rng.random() < 0.5 else "-"
            pwm = KNOWN_MOTIFS[name] if strand == "+" else reverse_complement(KNOWN_MOTIFS[name])
            width = len(pwm)
            for _attempt in range(50):
                start = int(rng.integers(20, length - width - 20))
                if not occupied[max(0, start - 25):start + width + 25].any():
                    break
            else:
                continue
            occupied[start:start + width] = True
            seqs[locus, start:start + width] = [rng.choice(4, p=col) for col in pwm]
            amplitude = rng.uniform(0.6, 1.4)
            hyp[locus, start:start + width] = amplitude * np.log2(pwm / 0.25)
            sites.append(PlantedSite(locus, start, name, strand))
    one_hot = np.eye(4, dtype=np.float32)[seqs]
    starts = np.arange(n_loci) * locus_spacing
    with h5py.File(path, "w") as f:
        f.create_dataset("coords_chrom", data=np.array([chrom] * n_loci, dtype="S"))
        f.create_dataset("coords_start", data=starts)
        f.create_dataset("coords_end", data=starts + length)
        f.create_dataset("hyp_scores", data=hyp.astype(np.float32))
        f.create_dataset("input_seqs", data=one_hot)
    return sites
