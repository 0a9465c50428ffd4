"""Simulated read 5'-end rates and counts: ChIP-nexus footprints, control bumps, background; bigWig writing.

Per base and strand, the expected ChIP rate is a GC-dependent background, plus a fraction of the control's rate
(the control's shape leaks into ChIP, which is what the bias tracks let a model explain away), plus a footprint
at every bound site: + strand 5' ends pile up just upstream of the motif and − strand ends just downstream,
decaying away from it (a sharp exponential and a broader shoulder). Control rates are a flat background plus
broad Gaussian bumps, some at peaks and some elsewhere, shifted apart on the two strands by half a fragment.
Observed counts are Poisson draws of these rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyBigWig

from bpnetz.genome.motif import Motif

CHIP_BACKGROUND = 0.008  # ChIP reads per base per strand at GC 0.475; proportional to GC
CONTROL_BACKGROUND = 0.02  # control reads per base per strand
CONTROL_LEAK = 0.4  # fraction of the control's rate present in the ChIP
BUMP_SIGMAS = np.array([80, 150, 300])  # widths (bp) of control bumps
BUMP_MEAN_READS = 50.0  # mean reads per strand in a control bump
BUMP_AT_PEAK = 0.35  # fraction of regions with a control bump
BUMPS_ELSEWHERE = 0.5  # control bumps away from regions, per region
BUMP_SHIFT = 40  # + strand bumps sit this far upstream of − strand bumps' centres (half a fragment)
SHOULDER = (0.25, 25.0, 15.0)  # footprint shoulder: share of reads, distance (bp) and width from the anchor
CHIPSEQ_BUMP = (60.0, 35.0)  # the chipseq footprint: distance (bp) of the bump from the anchor and its SD


def footprint_kernel(motif: Motif, shape: str = "nexus", scale: float = 1.0) -> np.ndarray:
    """Share of a strand's reads at distance t ≥ 0 from the footprint anchor, away from the motif (sums to 1).

    ``nexus``: a sharp exponential (the motif's decay) plus a Gaussian shoulder (SHOULDER); ``gaussian``: one
    Gaussian bump of SD = decay centred 2·decay from the anchor; ``chipseq``: a broad bump (CHIPSEQ_BUMP), the
    fragment-length scale of ChIP-seq. ``scale`` multiplies every width and distance.
    """
    decay = motif.decay * scale
    if shape == "chipseq":
        mu, sigma = CHIPSEQ_BUMP[0] * scale, CHIPSEQ_BUMP[1] * scale
        t = np.arange(int(mu + 4 * sigma), dtype=np.float64)
        kernel = np.exp(-0.5 * ((t - mu) / sigma) ** 2)
    elif shape == "gaussian":
        t = np.arange(max(int(6 * decay), 20), dtype=np.float64)
        kernel = np.exp(-0.5 * ((t - 2 * decay) / decay) ** 2)
    else:
        t = np.arange(max(int(6 * decay), int(80 * scale)), dtype=np.float64)
        sharp = np.exp(-t / decay)
        share, mu, sigma = SHOULDER
        shoulder = np.exp(-0.5 * ((t - mu * scale) / (sigma * scale)) ** 2)
        kernel = (1 - share) * sharp / sharp.sum() + share * shoulder / shoulder.sum()
    return kernel / kernel.sum()


@dataclass
class Bumps:
    """Broad control bumps: chromosome index, centre, reads per strand, width (Gaussian sigma)."""

    chrom: np.ndarray
    center: np.ndarray
    reads: np.ndarray
    sigma: np.ndarray


def control_bumps(chrom_lengths: list[int], region_chrom: np.ndarray, region_center: np.ndarray,
                  rng: np.random.Generator) -> Bumps:
    """Bumps at a random BUMP_AT_PEAK share of regions (near their centre) and BUMPS_ELSEWHERE × as many elsewhere."""
    at_peak = rng.random(region_center.size) < BUMP_AT_PEAK
    n_away = int(BUMPS_ELSEWHERE * region_center.size)
    lengths = np.asarray(chrom_lengths, dtype=np.float64)
    away_chrom = rng.choice(lengths.size, n_away, p=lengths / lengths.sum())
    away_center = (rng.random(n_away) * lengths[away_chrom]).astype(np.int64)
    chrom = np.concatenate([region_chrom[at_peak], away_chrom])
    center = np.concatenate([region_center[at_peak] + rng.integers(-50, 51, int(at_peak.sum())), away_center])
    reads = rng.gamma(2.0, BUMP_MEAN_READS / 2.0, chrom.size)
    sigma = rng.choice(BUMP_SIGMAS, chrom.size)
    return Bumps(chrom, center, reads, sigma)


def _scatter(length: int, positions: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sum ``weights`` at ``positions`` into a length-``length`` array, dropping positions off the chromosome."""
    keep = (positions >= 0) & (positions < length)
    return np.bincount(positions[keep], weights=weights[keep], minlength=length)


def control_rates(length: int, bumps: Bumps, chrom: int) -> tuple[np.ndarray, np.ndarray]:
    """Expected control reads per base on the + and − strands of one chromosome."""
    mine = bumps.chrom == chrom
    rates = []
    for shift in (-BUMP_SHIFT // 2, BUMP_SHIFT // 2):
        rate = np.full(length, CONTROL_BACKGROUND)
        for sigma in BUMP_SIGMAS:
            sel = mine & (bumps.sigma == sigma)
            offsets = np.arange(-3 * sigma, 3 * sigma + 1)
            shape = np.exp(-0.5 * (offsets / sigma) ** 2)
            shape /= shape.sum()
            pos = (bumps.center[sel] + shift)[:, None] + offsets[None, :]
            rate += _scatter(length, pos.ravel(), (bumps.reads[sel][:, None] * shape[None, :]).ravel())
        rates.append(rate)
    return rates[0], rates[1]


def chip_background(gc: np.ndarray, control: np.ndarray, *, depth: float = 1.0,
                    leak: float = CONTROL_LEAK) -> np.ndarray:
    """Expected ChIP reads per base of one strand without binding: GC-scaled background (times the read
    ``depth``) plus the ``leak`` share of the control's rate."""
    return depth * CHIP_BACKGROUND * gc / 0.475 + leak * control


def footprints(length: int, start: np.ndarray, end: np.ndarray, motif: np.ndarray, depth: np.ndarray,
               motifs: list[Motif], *, shape: str = "nexus", scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Expected + and − strand reads per base from sites on one chromosome (half of each site's depth per strand),
    with the footprint ``shape`` and width ``scale`` of :func:`footprint_kernel`."""
    plus = np.zeros(length)
    minus = np.zeros(length)
    for m, mot in enumerate(motifs):
        sel = (motif == m) & (depth > 0)
        kernel = footprint_kernel(mot, shape, scale)
        t = np.arange(kernel.size)
        weights = ((depth[sel] / 2)[:, None] * kernel[None, :]).ravel()
        plus += _scatter(length, ((start[sel] - mot.gap)[:, None] - t[None, :]).ravel(), weights)
        minus += _scatter(length, ((end[sel] - 1 + mot.gap)[:, None] + t[None, :]).ravel(), weights)
    return plus, minus


class BigWigWriter:
    """Writes whole chromosomes (in header order) to a bigWig, one value per base.

    ``sparse`` tracks (counts) become run-length bedGraph entries with zero runs left out (gaps); dense tracks
    (expected rates) become one fixedStep block per chromosome at half precision (relative error < 0.05 %)
    and without zoom levels, which keeps the file small where rates vary from base to base.
    """

    def __init__(self, path: Path, chrom_sizes: list[tuple[str, int]], *, sparse: bool):
        self.sparse = sparse
        self._bw = pyBigWig.open(str(path), "w")
        self._bw.addHeader(chrom_sizes, maxZooms=10 if sparse else 0)

    def add(self, chrom: str, values: np.ndarray) -> None:
        """Append a chromosome's per-base values."""
        if not self.sparse:
            dense = np.asarray(values).astype(np.float16).astype(np.float64)
            self._bw.addEntries(chrom, 0, values=dense, span=1, step=1)
            return
        values = np.asarray(values, dtype=np.float32)
        change = np.flatnonzero(np.diff(values) != 0) + 1
        starts = np.concatenate([[0], change]).astype(np.int64)
        ends = np.concatenate([change, [values.size]]).astype(np.int64)
        run_values = values[starts].astype(np.float64)
        keep = run_values != 0
        if keep.any():
            self._bw.addEntries([chrom] * int(keep.sum()), starts[keep], ends=ends[keep], values=run_values[keep])

    def close(self) -> None:
        self._bw.close()
