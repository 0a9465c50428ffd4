"""Similarity between discovered motifs (modisco patterns) and known motifs (PFMs), e.g. planted ones.

The similarity of two PFMs is an IC-weighted, background-centred cosine similarity at their best alignment:
each column's probabilities minus the uniform background (0.25) are multiplied by the column's information
content (bits), both matrices are zero-padded to a common frame, and the cosine of the two flattened matrices
is maximised over both orientations of the discovered motif and every offset where at least ``min_overlap``
columns overlap, then clipped at 0. So the score lies in [0, 1]: 1 for identical motifs; a column with another
preferred base counts against the match (its centred vectors point apart), which keeps unrelated motifs low
even at their luckiest alignment. Uninformative flanks (modisco patterns carry ~10 bp of them on each side)
add almost nothing to either norm, while informative columns of one motif that fall outside the other lower
the score, so a partial match is penalised by the information it misses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from bpnetz.genome.motif import information_content
from bpnetz.genome.sequence import reverse_complement_onehot

if TYPE_CHECKING:
    from bpnetz.motifs.modisco import Pattern

@dataclass(frozen=True)
class Alignment:
    """Best alignment of a query motif onto a target motif.

    ``offset`` is the target position of the query's first column (after orienting it by ``strand``:
    '+' as given, '-' reverse-complemented); negative when the query starts before the target.
    """

    similarity: float
    offset: int
    strand: str
    overlap: int


def _centred(pfm: np.ndarray) -> np.ndarray:
    """Columns minus the uniform background, weighted by their information content."""
    pfm = np.asarray(pfm, dtype=np.float64)
    return (pfm - 0.25) * information_content(pfm)[:, None]


def align_motifs(target: np.ndarray, query: np.ndarray, *, min_overlap: int = 5) -> Alignment:
    """Best similarity (module docstring) of ``query`` placed on ``target`` (both (L, 4) PFMs), either strand."""
    t = _centred(target)
    t_norm = np.linalg.norm(t)
    best = Alignment(0.0, 0, "+", 0)
    for strand, q in (("+", _centred(query)), ("-", _centred(reverse_complement_onehot(query)))):
        norm = t_norm * np.linalg.norm(q)
        if norm == 0:
            continue
        need = min(min_overlap, len(t), len(q))
        for offset in range(need - len(q), len(t) - need + 1):
            lo, hi = max(0, offset), min(len(t), offset + len(q))
            dot = float(np.sum(t[lo:hi] * q[lo - offset:hi - offset]))
            if dot / norm > best.similarity:
                best = Alignment(dot / norm, offset, strand, hi - lo)
    return best


@dataclass(frozen=True)
class MotifMatch:
    """The best discovered pattern for one known motif.

    ``strand`` and ``offset`` place the pattern on the known motif (see :class:`Alignment`);
    ``n_seqlets_similar`` counts the seqlets of every pattern whose similarity to the known motif is at least
    the table's threshold (modisco often splits one motif into variants).
    """

    known: str
    pattern: str | None
    similarity: float
    n_seqlets: int
    strand: str
    offset: int
    n_patterns_similar: int
    n_seqlets_similar: int

    def to_dict(self) -> dict:
        return asdict(self)


def match_motifs(discovered: Sequence[Pattern], known: Mapping[str, np.ndarray], *, min_overlap: int = 5,
                 similar_threshold: float = 0.8) -> list[MotifMatch]:
    """For each known motif (name -> (L, 4) PFM), the most similar discovered pattern and its seqlet count.

    Patterns with similarity >= ``similar_threshold`` count as the same motif in ``n_seqlets_similar``.
    ``discovered`` holds objects with ``name``, ``pfm`` ((L, 4)) and ``n_seqlets`` (e.g.
    :class:`bpnetz.motifs.modisco.Pattern`). A known motif with no discovered pattern gets ``pattern=None``.
    """
    table = []
    for known_name, pfm in known.items():
        pfm = np.asarray(pfm, dtype=np.float64)
        if pfm.ndim != 2 or pfm.shape[1] != 4:
            raise ValueError(f"known motif {known_name!r} must be an (L, 4) matrix, got shape {pfm.shape}")
        aligned = [(align_motifs(pfm, p.pfm, min_overlap=min_overlap), p) for p in discovered]
        similar = [p for a, p in aligned if a.similarity >= similar_threshold]
        n_similar = sum(p.n_seqlets for p in similar)
        if not aligned:
            table.append(MotifMatch(known_name, None, 0.0, 0, "+", 0, 0, 0))
            continue
        best, pattern = max(aligned, key=lambda ap: (ap[0].similarity, ap[1].n_seqlets))
        table.append(MotifMatch(known_name, pattern.name, round(float(best.similarity), 4), pattern.n_seqlets,
                                best.strand, best.offset, len(similar), n_similar))
    return table


def format_matches(matches: Sequence[MotifMatch]) -> str:
    """A plain-text table: known motif -> best discovered pattern, similarity, seqlets."""
    header = ("known motif", "best discovered pattern", "similarity", "seqlets", "seqlets in similar patterns")
    rows = [(m.known, m.pattern or "-", f"{m.similarity:.3f}", str(m.n_seqlets),
             f"{m.n_seqlets_similar} ({m.n_patterns_similar} pattern{'s' if m.n_patterns_similar != 1 else ''})")
            for m in matches]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows])
