"""Built-in transcription-factor-like motifs for synthetic experiments, with PWM scoring, sampling and MEME output.

Each :class:`Motif` holds a position probability matrix (rows = positions, columns A, C, G, T) written for this
package to resemble well-known factors (GATA, AP-1, CTCF, Sox, Oct, NRF1), plus the parameters that shape its
simulated ChIP-nexus footprint: its read depth at a perfect site and how far from the motif edge, and how
sharply, the 5' ends of reads pile up. Scores are log2 odds against a uniform background.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bpnetz.errors import InputError
from bpnetz.genome.sequence import BASES

#: smallest probability kept in a matrix, so that every base has a finite log-odds score.
MIN_PROBABILITY = 0.01
BACKGROUND = 0.25
#: chance matches per bp and strand of random sequence allowed above a motif's binding threshold (0.05 per kb)
CHANCE_RATE = 2.5e-5


@dataclass(frozen=True)
class Motif:
    """A planted motif: its probability matrix and the shape of its ChIP-nexus footprint.

    ``depth`` is the expected number of reads (both strands) at a best-scoring bound site; ``gap`` is the distance
    in bp from the motif edge to the strongest 5'-end position; ``decay`` is the e-folding length (bp) of the
    read pile-up away from the motif.
    """

    name: str
    description: str
    rows: tuple[tuple[float, float, float, float], ...]
    depth: float
    gap: int
    decay: float

    @property
    def pwm(self) -> np.ndarray:
        """Probability matrix (length, 4), floored at MIN_PROBABILITY and renormalised per row."""
        matrix = np.maximum(np.asarray(self.rows, dtype=np.float64), MIN_PROBABILITY)
        return matrix / matrix.sum(axis=1, keepdims=True)

    @property
    def log_odds(self) -> np.ndarray:
        """log2(p / 0.25) per position and base."""
        return np.log2(self.pwm / BACKGROUND)

    @property
    def length(self) -> int:
        return len(self.rows)

    @property
    def best_score(self) -> float:
        return float(self.log_odds.max(axis=1).sum())

    @property
    def threshold(self) -> float:
        """Binding threshold: the lowest score that uniform random sequence reaches at most CHANCE_RATE per bp.

        Computed exactly from the score distribution of random sequence (scores on a 0.01-bit grid).
        """
        step = 0.01
        grid = np.round(self.log_odds / step).astype(np.int64)
        floor = grid.min(axis=1)
        dist = np.ones(1)
        for row, low in zip(grid, floor):
            position = np.zeros(row.max() - low + 1)
            np.add.at(position, row - low, BACKGROUND)
            dist = np.convolve(dist, position)
        at_least = np.cumsum(dist[::-1])[::-1]  # P(score >= floor.sum() + i)
        first = int(np.argmax(at_least <= CHANCE_RATE))
        return float((first + floor.sum()) * step)

    @property
    def consensus(self) -> str:
        return "".join(BASES[i] for i in self.pwm.argmax(axis=1))


def _rows(*rows: tuple[float, float, float, float]) -> tuple[tuple[float, float, float, float], ...]:
    return tuple(rows)


#: The built-in motif set, by name. Default experiments use the first three. The matrices are deliberately
#: informative (most positions ≥ 1.3 bits), so that chance matches as strong as bound sites are rare.
BUILTIN: dict[str, Motif] = {
    m.name: m
    for m in (
        Motif("gata", "GATA-like", _rows(
            (0.10, 0.60, 0.10, 0.20), (0.85, 0.05, 0.05, 0.05), (0.04, 0.04, 0.88, 0.04),
            (0.90, 0.03, 0.03, 0.04), (0.03, 0.03, 0.03, 0.91), (0.91, 0.03, 0.03, 0.03),
            (0.85, 0.04, 0.07, 0.04), (0.60, 0.05, 0.30, 0.05), (0.10, 0.10, 0.70, 0.10),
            (0.10, 0.65, 0.10, 0.15), (0.65, 0.10, 0.15, 0.10)), depth=180.0, gap=3, decay=9.0),
        Motif("ap1", "AP-1-like, palindromic", _rows(
            (0.15, 0.15, 0.55, 0.15), (0.70, 0.10, 0.10, 0.10), (0.04, 0.04, 0.04, 0.88),
            (0.03, 0.03, 0.91, 0.03), (0.91, 0.03, 0.03, 0.03), (0.05, 0.45, 0.45, 0.05),
            (0.03, 0.03, 0.03, 0.91), (0.03, 0.91, 0.03, 0.03), (0.88, 0.04, 0.04, 0.04),
            (0.10, 0.10, 0.10, 0.70), (0.15, 0.55, 0.15, 0.15)), depth=220.0, gap=5, decay=13.0),
        Motif("ctcf", "CTCF-like", _rows(
            (0.05, 0.80, 0.10, 0.05), (0.10, 0.75, 0.05, 0.10), (0.70, 0.05, 0.20, 0.05),
            (0.05, 0.85, 0.05, 0.05), (0.05, 0.60, 0.05, 0.30), (0.70, 0.05, 0.20, 0.05),
            (0.05, 0.05, 0.85, 0.05), (0.35, 0.05, 0.55, 0.05), (0.05, 0.05, 0.65, 0.25),
            (0.02, 0.03, 0.93, 0.02), (0.05, 0.05, 0.85, 0.05), (0.10, 0.75, 0.05, 0.10),
            (0.25, 0.05, 0.65, 0.05), (0.10, 0.65, 0.15, 0.10)), depth=300.0, gap=1, decay=6.0),
        Motif("sox", "Sox-like", _rows(
            (0.60, 0.15, 0.10, 0.15), (0.10, 0.70, 0.10, 0.10), (0.15, 0.60, 0.05, 0.20),
            (0.88, 0.04, 0.04, 0.04), (0.03, 0.03, 0.03, 0.91), (0.03, 0.03, 0.03, 0.91),
            (0.03, 0.03, 0.91, 0.03), (0.05, 0.04, 0.06, 0.85), (0.10, 0.05, 0.10, 0.75),
            (0.10, 0.65, 0.10, 0.15), (0.60, 0.10, 0.15, 0.15)), depth=160.0, gap=4, decay=11.0),
        Motif("oct", "Oct-like", _rows(
            (0.15, 0.10, 0.10, 0.65), (0.70, 0.10, 0.10, 0.10), (0.05, 0.05, 0.05, 0.85),
            (0.05, 0.05, 0.85, 0.05), (0.05, 0.85, 0.05, 0.05), (0.90, 0.03, 0.03, 0.04),
            (0.88, 0.04, 0.04, 0.04), (0.80, 0.05, 0.05, 0.10), (0.10, 0.05, 0.05, 0.80),
            (0.10, 0.10, 0.70, 0.10), (0.60, 0.10, 0.15, 0.15)), depth=160.0, gap=4, decay=10.0),
        Motif("nrf1", "NRF1-like, palindromic", _rows(
            (0.10, 0.15, 0.15, 0.60), (0.05, 0.05, 0.80, 0.10), (0.05, 0.85, 0.05, 0.05),
            (0.05, 0.05, 0.85, 0.05), (0.05, 0.85, 0.05, 0.05), (0.75, 0.05, 0.10, 0.10),
            (0.10, 0.10, 0.05, 0.75), (0.05, 0.05, 0.85, 0.05), (0.05, 0.85, 0.05, 0.05),
            (0.05, 0.05, 0.85, 0.05), (0.10, 0.80, 0.05, 0.05), (0.60, 0.15, 0.15, 0.10)),
            depth=200.0, gap=2, decay=8.0),
    )
}

DEFAULT_MOTIFS = ("gata", "ap1", "ctcf")


def builtin(names: Iterable[str] | None = None) -> list[Motif]:
    """The built-in motifs with these names (default: GATA-, AP-1- and CTCF-like), in the order given."""
    chosen = list(DEFAULT_MOTIFS if names is None else names)
    unknown = [n for n in chosen if n not in BUILTIN]
    if unknown or not chosen:
        raise InputError(f"unknown motif name(s) {unknown or chosen!r}; built-in motifs are "
                         f"{', '.join(BUILTIN)}.", fix="Pick names from that list, e.g. --motifs gata,ap1,ctcf.")
    if len(set(chosen)) != len(chosen):
        raise InputError(f"motif names repeat in {chosen!r}.", fix="List each motif once.")
    return [BUILTIN[n] for n in chosen]


def score(motif: Motif, codes: np.ndarray) -> np.ndarray:
    """Log2-odds score of each row of ``codes`` (n, motif.length) read on the forward strand; N scores 0."""
    codes = np.atleast_2d(codes)
    padded = np.vstack([motif.log_odds.T, np.zeros((1, motif.length))])  # (5, length): N row = 0
    return padded[codes, np.arange(motif.length)].sum(axis=1)


def sample(motif: Motif, n: int, rng: np.random.Generator, *, weakening: np.ndarray | float = 0.0) -> np.ndarray:
    """Draw ``n`` site sequences (n, length) of base codes from the matrix.

    ``weakening`` (per site or scalar, in [0, 1]) mixes the matrix with the uniform background, giving weaker
    sites: 0 samples from the motif itself, 1 from random sequence.
    """
    mix = np.broadcast_to(np.asarray(weakening, dtype=np.float64), (n,))[:, None, None]
    probs = (1.0 - mix) * motif.pwm[None] + mix * BACKGROUND  # (n, length, 4)
    cumulative = np.cumsum(probs, axis=2)
    draws = rng.random((n, motif.length, 1))
    return np.minimum((draws > cumulative).sum(axis=2), 3).astype(np.uint8)


def write_json(path: Path, motifs: Sequence[Motif]) -> None:
    """Write {name: probability matrix as a list of [A, C, G, T] rows}."""
    data = {m.name: [[round(float(p), 6) for p in row] for row in m.pwm] for m in motifs}
    path.write_text(json.dumps(data, indent=1) + "\n")


#: added to every probability before the information content is computed
IC_PSEUDOCOUNT = 1e-3


def information_content(pfm: np.ndarray) -> np.ndarray:
    """Per-column information content in bits of an (L, 4) PFM against a uniform background."""
    p = (np.asarray(pfm, dtype=np.float64) + IC_PSEUDOCOUNT)
    p /= p.sum(axis=1, keepdims=True)
    return 2.0 + np.sum(p * np.log2(p), axis=1)


def ic_scaled(pfm: np.ndarray) -> np.ndarray:
    """The PFM with each column multiplied by its information content (the letter heights of an IC logo)."""
    pfm = np.asarray(pfm, dtype=np.float64)
    return pfm * information_content(pfm)[:, None]


def read_meme_motifs(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Motifs of a MEME-format file as name -> (L, 4) probability matrix (ACGT columns)."""
    from memelite.io import read_meme

    path = Path(path)
    if not path.is_file():
        raise InputError("motif database not found.", path=path, fix="Pass a MEME-format motif file.")
    try:
        motifs = read_meme(str(path))
    except (ValueError, IndexError, AttributeError) as err:
        raise InputError(f"cannot parse as MEME ({err}).", path=path,
                         fix="Each MOTIF needs a 'letter-probability matrix: alength= 4 w= W' line and W rows "
                             "of 4 probabilities.") from err
    if not motifs:
        raise InputError("no motifs found (no MOTIF with a letter-probability matrix).", path=path,
                         fix="Pass a MEME-format motif file, e.g. a JASPAR export in MEME format.")
    return {name: np.asarray(pwm, dtype=np.float64).T for name, pwm in motifs.items()}


def format_meme(motifs: Mapping[str, np.ndarray], nsites: Mapping[str, int] | None = None) -> str:
    """MEME (version 4) text for name -> (L, 4) probability matrices, uniform background."""
    lines = ["MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", "",
             "Background letter frequencies", "A 0.25 C 0.25 G 0.25 T 0.25", ""]
    for name, pfm in motifs.items():
        n = (nsites or {}).get(name, 1)
        lines.append(f"MOTIF {name}")
        lines.append(f"letter-probability matrix: alength= 4 w= {len(pfm)} nsites= {n} E= 0")
        lines += [" ".join(f"{p:.6f}" for p in row) for row in pfm]
        lines.append("")
    return "\n".join(lines)


def write_meme(path: Path, motifs: Sequence[Motif]) -> None:
    """Write the motifs' probability matrices in MEME minimal motif format."""
    path.write_text(format_meme({m.name: m.pwm for m in motifs}, {m.name: 100 for m in motifs}))
