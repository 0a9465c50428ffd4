"""Which loci a subset of a store uses: the split's chromosomes, every peak once per epoch, and background loci
drawn per task at its ratio (afresh each training epoch, one fixed draw otherwise). Framework-free.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np

from bpnetz.config import Split
from bpnetz.errors import InputError
from bpnetz.store import schema
from bpnetz.store.reader import StoreReader

Subset = Literal["train", "val", "test", "all"]
SUBSETS = ("train", "val", "test", "all")
#: "draw": int(n_peaks × ratio) per task (afresh each epoch for train, one fixed draw otherwise);
#: "all": every background locus of the selected chromosomes; "none": peaks only.
BACKGROUND_MODES = ("draw", "all", "none")

# independent random streams per (seed, epoch)
STREAM_BACKGROUND, STREAM_ORDER, STREAM_AUGMENT, STREAM_SHARD = 0, 1, 2, 3


def subset_chroms(reader: StoreReader, split: Split | None, subset: Subset,
                  all_chroms: Sequence[str] | None) -> list[str]:
    """Chromosomes of a subset: from the split (train = all_chroms, default the store's, minus val and test)."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; expected one of {SUBSETS}")
    if subset == "all":
        return list(all_chroms) if all_chroms is not None else reader.chromosomes
    if split is None:
        raise InputError(f"the '{subset}' subset needs a split (splits.json fold).")
    return split.chroms(subset, list(all_chroms) if all_chroms is not None else reader.chromosomes)


class LocusSelection:
    """The loci a subset may use and the ones each epoch visits: every peak once, plus backgrounds per task."""

    def __init__(self, reader: StoreReader, chroms: Sequence[str], *, backgrounds: str, redraw: bool, seed: int):
        loci = reader.loci
        in_split = loci["chrom"].isin(set(chroms)).to_numpy()
        if not in_split.any():
            raise InputError(f"no loci on the requested chromosomes ({', '.join(chroms) or 'none'}); the store's "
                             f"loci are on {', '.join(reader.chromosomes)}.", path=reader.path,
                             fix="Check splits.json / --chroms against the chromosome names of the store.")
        kind = loci["kind"].to_numpy()
        task = loci["task"].to_numpy()
        peak_rows = np.flatnonzero(in_split & (kind == schema.KIND_PEAK))
        self.n_draw: dict[int, int] = {}
        background_rows: dict[int, np.ndarray] = {}
        if backgrounds != "none":
            for t, name in enumerate(reader.layout.tasks):
                rows = np.flatnonzero(in_split & (kind == schema.KIND_BACKGROUND) & (task == t))
                if backgrounds == "all":
                    background_rows[t], self.n_draw[t] = rows, len(rows)
                    continue
                ratio = reader.layout.background_ratio.get(name, reader.layout.background_ratio.get(str(t), 0.0))
                wanted = int(int(np.sum(task[peak_rows] == t)) * ratio)
                if wanted > len(rows):
                    warnings.warn(f"task {name}: {wanted} background loci wanted (peaks × ratio {ratio}) but the "
                                  f"selected chromosomes hold only {len(rows)}; using all of them.", stacklevel=3)
                if wanted:
                    background_rows[t], self.n_draw[t] = rows, min(wanted, len(rows))
        #: sorted store rows this selection may use (its "positions" index into this array)
        self.rows = np.unique(np.concatenate([peak_rows, *background_rows.values()]))
        if len(self.rows) == 0:
            raise InputError(f"the chromosomes {', '.join(chroms)} hold no peaks of this store.", path=reader.path,
                             fix="Check splits.json / --chroms.")
        self.peak_positions = np.searchsorted(self.rows, peak_rows)
        self.background_positions = {t: np.searchsorted(self.rows, r) for t, r in background_rows.items()}
        self.redraw = redraw
        self.seed = seed
        self.chroms = list(chroms)

    def restrict(self, visits: np.ndarray) -> None:
        """Keep only the loci at these indices of epoch 0's loci in store order (what an unshuffled stream's
        ``loci()`` lists; ``bpnetz predict --test-indices``), so that nothing else is read; order and repeats of
        ``visits`` do not matter. For selections that draw no backgrounds (backgrounds "all" or "none")."""
        if any(self.n_draw[t] < len(pos) for t, pos in self.background_positions.items()):
            raise ValueError("a selection drawing backgrounds cannot be restricted to fixed loci")
        visits, loci = np.asarray(visits, dtype=np.int64), self.epoch_positions(0)
        if not len(visits) or visits.min() < 0 or visits.max() >= len(loci):
            raise ValueError(f"restricted to {len(visits)} indices, which must lie in [0, {len(loci)})")
        before = self.rows
        self.rows = np.unique(before[loci[visits]])

        def kept_positions(positions: np.ndarray) -> np.ndarray:
            rows = before[positions]
            return np.searchsorted(self.rows, rows[np.isin(rows, self.rows)])

        self.peak_positions = kept_positions(self.peak_positions)
        self.background_positions = {t: kept_positions(pos) for t, pos in self.background_positions.items()}
        self.n_draw = {t: len(pos) for t, pos in self.background_positions.items()}

    @property
    def n_examples(self) -> int:
        """Loci visited per epoch."""
        return len(self.peak_positions) + sum(self.n_draw.values())

    def epoch_positions(self, epoch: int) -> np.ndarray:
        """Sorted positions (into :attr:`rows`) of the loci of an epoch; backgrounds fixed unless ``redraw``."""
        rng = np.random.default_rng([self.seed, epoch if self.redraw else 0, STREAM_BACKGROUND])
        drawn = [rng.choice(pos, size=self.n_draw[t], replace=False) if self.n_draw[t] < len(pos) else pos
                 for t, pos in self.background_positions.items()]
        return np.unique(np.concatenate([self.peak_positions, *drawn]))
