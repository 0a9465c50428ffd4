"""The simulator's own expected reads of a sequence, as a stand-in for a trained model (``bpnetz syntax``'s Python
API duck-types it): what a perfectly learned model of a simulation would predict.

Recomputed here from the simulation's files, not the simulator's code: motif matrices (truth/motifs.json), depths
and the cooperativity record (truth/summary.json). A site is every window scoring at least its motif's binding
threshold (best strand); its affinity 8^(−(best − score)/(best − threshold)) (bpnetz/simulate/loci.py's stated
model); each bound pair multiplies both affinities by 1 + c·exp(−(d − spacing)²/(2·width²)), d the centre distance;
the total is a flat background plus depth × affinity summed over sites.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from bpnetz.genome import motif as motif_lib

AFFINITY_RANGE = 8.0


@dataclass
class _Layout:
    tasks: list[str] = field(default_factory=lambda: ["0"])

    @staticmethod
    def task_tracks(task: int) -> list[int]:
        return [0]


@dataclass
class Oracle:
    """Expected total reads of one-hot sequences under a simulation's truth (see the module docstring)."""

    motifs: list[motif_lib.Motif]
    truth: dict  # summary.json's "cooperativity"
    input_len: int
    background: float = 50.0
    layout: _Layout = field(default_factory=_Layout)

    def __post_init__(self) -> None:
        self.cut = [(m.best_score, m.threshold) for m in self.motifs]  # computed once: threshold takes ~20 ms

    @classmethod
    def of(cls, experiment: Path, input_len: int) -> Oracle:
        matrices = json.loads((experiment / "truth/motifs.json").read_text())
        summary = json.loads((experiment / "truth/summary.json").read_text())
        motifs = [motif_lib.BUILTIN[name] for name in summary["motifs"]]
        assert all(np.allclose(m.pwm, matrices[m.name], atol=1e-6) for m in motifs)
        return cls(motifs, summary["cooperativity"], input_len)

    def predict(self, onehot: np.ndarray, bias: dict) -> dict[str, np.ndarray]:
        return {"reads": np.array([self.reads(codes) for codes in onehot.argmax(axis=2)])}

    @staticmethod
    def counts(outputs: dict[str, np.ndarray]) -> np.ndarray:
        return outputs["reads"][:, None, None]  # (n, 1 position, 1 track): syntax sums them

    def sites(self, codes: np.ndarray) -> list[tuple[float, int, float]]:
        """(centre, motif index, affinity) of every window at or above its motif's threshold."""
        found = []
        for k, m in enumerate(self.motifs):
            windows = sliding_window_view(codes, m.length)
            score = np.maximum(motif_lib.score(m, windows), motif_lib.score(m, (3 - windows)[:, ::-1]))
            best, threshold = self.cut[k]
            for start in np.flatnonzero(score >= threshold):
                affinity = AFFINITY_RANGE ** (-(best - score[start]) / (best - threshold))
                found.append((start + m.length / 2, k, affinity))
        return found

    def reads(self, codes: np.ndarray) -> float:
        sites = self.sites(codes)
        total = self.background
        for i, (centre, k, affinity) in enumerate(sites):
            for j, (other, k2, _) in enumerate(sites):
                if j != i:
                    affinity *= self.boost(abs(centre - other), k == k2)
            total += self.motifs[k].depth * affinity
        return total

    def boost(self, distance: float, same: bool) -> float:
        t = self.truth
        strength = t["boost_same_motif"] if same else t["boost_different_motifs"]
        return 1 + strength * np.exp(-0.5 * ((distance - t["spacing"]) / t["width"]) ** 2)
