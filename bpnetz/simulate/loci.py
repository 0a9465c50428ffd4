"""Where things happen in a simulated experiment: bound regions, planted motif sites, peak calls, background loci.

A *region* is a bound locus: 1–3 motif sites planted near its centre (the first always a bound, strong site),
with the second and third often within 50 bp of the first so that cooperative pairs (soft syntax) are common.
By default cooperativity falls linearly with distance (no preferred spacing); :class:`Cooperativity` with a
spacing makes it peak at that spacing instead and plants pairs around it (``bpnetz simulate
--cooperative-spacing``).
Regions prefer GC-rich segments and stay clear of N runs; a few sit deliberately close to chromosome ends so
that builders must handle windows that cross an end. Each task responds to a subset of the motifs; a region is a
peak of a task when it holds a bound site of one of that task's motifs.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.stats import poisson

from bpnetz.errors import InputError
from bpnetz.genome import motif as motif_lib
from bpnetz.genome.sequence import reverse_complement
from bpnetz.simulate.genome import Chromosome, gc_fraction, n_count

#: number of sites per region (1, 2, 3) and their probabilities.
SITES_PER_REGION = (np.array([1, 2, 3]), np.array([0.30, 0.45, 0.25]))
COOPERATIVE_SITES_PER_REGION = (np.array([1, 2, 3]), np.array([0.15, 0.45, 0.40]))  # with a preferred spacing
PRIMARY_OFFSET = 25  # primary site centre within ± this of the region centre
PAIR_CLOSE = 50  # cooperative range (bp between site centres)
PAIR_FAR = 130  # farthest secondary site
AFFINITY_RANGE = 8.0  # a site at the binding threshold has 1/AFFINITY_RANGE the affinity of a best-scoring one
WEAK_SITES = 0.2  # share of secondary sites drawn from a weakened matrix (usually below the threshold: unbound)
COOP_SAME, COOP_DIFFERENT = 0.4, 1.0  # cooperative boost at distance 0 for same / different motif pairs
CROSSTALK = 0.15  # relative depth of a task at sites of motifs outside its subset
EDGE_REGIONS_PER_TASK = 4
SUMMIT_SEARCH = 60  # summits are searched within ± this of the region centre
PEAK_HALF_WIDTH = (100, 250)
MAX_LOG10_P = 300.0  # -log10 p-values are capped here (the Poisson tail underflows beyond)


@dataclass(frozen=True)
class Cooperativity:
    """How the boost of a bound pair of sites depends on their centre distance d, and where secondary sites go.

    ``spacing`` 0 (default): 1 + c·(1 − d/PAIR_CLOSE) below PAIR_CLOSE with c = COOP_SAME / COOP_DIFFERENT for
    pairs of the same / different motifs, 1–3 sites per region (SITES_PER_REGION), secondary sites 60 % uniformly
    within PAIR_CLOSE of the primary, the rest up to PAIR_FAR (the built-in experiment, draws unchanged).

    Otherwise the boost is 1 + c·exp(−(d − spacing)²/(2·width²)), peaking at ``spacing`` bp, with c = ``strength``
    for different motifs (COOP_SAME/COOP_DIFFERENT of it for the same motif), and more pairs are planted
    (COOPERATIVE_SITES_PER_REGION, 85 % of secondary sites close): half of the close ones at a normal distance of
    mean ``spacing`` and SD 2·width, half uniformly from the motif's length to spacing + PAIR_CLOSE (pairs on both
    sides of the peak, the contrast a model learns it from); the rest from spacing + PAIR_CLOSE to spacing +
    PAIR_FAR. Sites may then abut (no 2-bp gap), so spacings down to the sum of the motifs' half lengths are plantable.
    On the tests' tiny model the default's share of pairs and c = 1 taught no interaction at all (excess at the
    spacing +0.00, 600 peaks, 10 epochs), hence more pairs and a larger default ``strength``.
    """

    spacing: int = 0
    width: float = 3.0
    strength: float = 3.0

    def boost(self, distance: np.ndarray, same: np.ndarray) -> np.ndarray:
        """Boost factor (≥ 1) of pairs at centre ``distance`` (bp), of the same motif where ``same``."""
        if not self.spacing:
            strength = np.where(same, COOP_SAME, COOP_DIFFERENT)
            return np.where(distance < PAIR_CLOSE, 1 + strength * (1 - distance / PAIR_CLOSE), 1.0)
        strength = self.strength * np.where(same, COOP_SAME / COOP_DIFFERENT, 1.0)
        return 1 + strength * np.exp(-0.5 * ((distance - self.spacing) / self.width) ** 2)

    @property
    def sites_per_region(self) -> tuple[np.ndarray, np.ndarray]:
        """Numbers of sites per region and their probabilities."""
        return SITES_PER_REGION if not self.spacing else COOPERATIVE_SITES_PER_REGION

    def distance(self, rng: np.random.Generator, length: int) -> int:
        """Centre distance of a secondary site of a motif ``length`` bp long from the primary site."""
        if not self.spacing:
            close = rng.random() < 0.6
            return int(rng.integers(length, PAIR_CLOSE) if close else rng.integers(PAIR_CLOSE, PAIR_FAR))
        if rng.random() >= 0.85:
            return int(rng.integers(self.spacing + PAIR_CLOSE, self.spacing + PAIR_FAR))
        if rng.random() < 0.5:
            return max(length, int(round(rng.normal(self.spacing, 2 * self.width))))
        return int(rng.integers(length, self.spacing + PAIR_CLOSE))

    @property
    def gap(self) -> int:
        """Fewest bases between two sites of a region."""
        return 0 if self.spacing else 2


@dataclass
class Regions:
    """Bound regions: chromosome index, centre, whether placed at a chromosome end (and for which task)."""

    chrom: np.ndarray
    center: np.ndarray
    edge_task: np.ndarray  # -1 for interior regions, else the task whose motif it carries

    @property
    def names(self) -> list[str]:
        return [f"peak_{i:05d}" for i in range(self.chrom.size)]


@dataclass
class Sites:
    """Planted motif sites (one row each), grouped by region (regions in genome order)."""

    chrom: np.ndarray
    start: np.ndarray
    end: np.ndarray
    strand: np.ndarray  # +1 / -1
    motif: np.ndarray
    score: np.ndarray
    bound: np.ndarray
    region: np.ndarray
    affinity: np.ndarray  # 0 for unbound sites, else in [1/AFFINITY_RANGE, 1] by score × cooperative boost


def task_motifs(n_tasks: int, n_motifs: int) -> np.ndarray:
    """Which motifs drive which task (bool, tasks × motifs): all for one task, else disjoint/cyclic subsets."""
    active = np.zeros((n_tasks, n_motifs), dtype=bool)
    for task in range(n_tasks):
        if n_tasks == 1:
            active[task] = True
        elif n_tasks <= n_motifs:
            active[task, task::n_tasks] = True
        else:
            active[task, task % n_motifs] = True
    return active


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Integer split of ``total`` proportional to ``weights`` (largest remainder)."""
    share = total * weights / weights.sum()
    counts = np.floor(share).astype(np.int64)
    counts[np.argsort(-(share - counts), kind="stable")[: total - counts.sum()]] += 1
    return counts


def _edge_regions(chroms: list[Chromosome], n_tasks: int, reach: int,
                  rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """(chrom, centre, task) of regions within ``reach`` bp of a chromosome end.

    EDGE_REGIONS_PER_TASK per task, alternating left and right ends over the chromosomes; each end is used at
    most once, so with many tasks the last ones may get fewer.
    """
    out = []
    n_ends = min(EDGE_REGIONS_PER_TASK * n_tasks, 2 * len(chroms))
    for i in range(n_ends):
        c = i % len(chroms)
        low = min(60, reach // 3)
        distance = int(rng.integers(low, max(low + 1, reach - SUMMIT_SEARCH)))
        left = (c + i // len(chroms)) % 2 == 0
        out.append((c, distance if left else chroms[c].length - 1 - distance, i // EDGE_REGIONS_PER_TASK))
    return out


def place_regions(chroms: list[Chromosome], n_regions: int, n_tasks: int, *, window_half: int, spacing: int,
                  rng: np.random.Generator) -> Regions:
    """Choose region centres: edge regions first, the rest GC-weighted, ≥ ``spacing`` apart, clear of N runs.

    ``window_half`` is half the sequence window (input_len/2 + max_jitter): interior regions keep that far (plus
    a margin) from the chromosome ends and from N runs; edge regions are placed strictly within it.
    """
    edge = _edge_regions(chroms, n_tasks, window_half, rng)
    if len(edge) >= n_regions:
        raise InputError(f"--n-peaks {n_regions} leaves no interior peaks after {len(edge)} edge peaks.",
                         fix=f"Ask for more than {2 * len(edge)} peaks.")
    margin = window_half + 200
    usable = np.array([max(c.length - 2 * margin, 1) for c in chroms], dtype=np.float64)
    per_chrom = _allocate(n_regions - len(edge), usable)
    chrom_idx, centres, edge_task = [], [], []
    for c, chrom in enumerate(chroms):
        taken = sorted(pos for cc, pos, _ in edge if cc == c)
        for cc, pos, task in edge:
            if cc == c:
                chrom_idx.append(c), centres.append(pos), edge_task.append(task)
        picked = _interior_centres(chrom, int(per_chrom[c]), taken, margin, spacing, rng)
        chrom_idx += [c] * len(picked)
        centres += picked
        edge_task += [-1] * len(picked)
    order = np.lexsort((np.asarray(centres), np.asarray(chrom_idx)))
    return Regions(np.asarray(chrom_idx)[order], np.asarray(centres, dtype=np.int64)[order],
                   np.asarray(edge_task)[order])


def _interior_centres(chrom: Chromosome, count: int, taken: list[int], margin: int, spacing: int,
                      rng: np.random.Generator) -> list[int]:
    """GC-weighted random centres ≥ ``spacing`` from each other and from ``taken``, ``margin`` from ends/N."""
    seg_len = np.diff(np.append(chrom.segment_starts, chrom.length))
    weight = seg_len * np.exp(4.0 * (chrom.segment_gc - 0.475))
    n_draw = 30 * count + 200
    seg = rng.choice(seg_len.size, n_draw, p=weight / weight.sum())
    positions = chrom.segment_starts[seg] + (rng.random(n_draw) * seg_len[seg]).astype(np.int64)
    n_runs = chrom.n_runs
    ok = (positions >= margin) & (positions < chrom.length - margin)
    for start, end in n_runs:
        ok &= (positions < start - margin) | (positions >= end + margin)
    placed = list(taken)
    picked: list[int] = []
    for pos in positions[ok]:
        i = bisect.bisect_left(placed, pos)
        if (i == 0 or pos - placed[i - 1] >= spacing) and (i == len(placed) or placed[i] - pos >= spacing):
            placed.insert(i, int(pos))
            picked.append(int(pos))
            if len(picked) == count:
                return picked
    raise InputError(f"{chrom.name} ({chrom.length} bp) cannot hold {count} peaks {spacing} bp apart.",
                     fix="Ask for fewer peaks (--n-peaks) or longer chromosomes (--chrom-length).")


def _site_layout(chroms: list[Chromosome], regions: Regions, motifs: list[motif_lib.Motif], active: np.ndarray,
                 rng: np.random.Generator, coop: Cooperativity) -> list[tuple[int, int, int, int, int, bool]]:
    """Per site: (region, chrom, start, motif, strand, is_primary); sites of a region never overlap."""
    lengths = np.array([m.length for m in motifs])
    rows = []
    for r in range(regions.chrom.size):
        c, centre, task = int(regions.chrom[r]), int(regions.center[r]), int(regions.edge_task[r])
        size = chroms[c].length
        n_sites = int(rng.choice(coop.sites_per_region[0], p=coop.sites_per_region[1]))
        primary = int(rng.choice(np.flatnonzero(active[task]))) if task >= 0 else int(rng.integers(len(motifs)))
        mid = int(np.clip(centre + rng.integers(-PRIMARY_OFFSET, PRIMARY_OFFSET + 1),
                          lengths[primary], size - lengths[primary] - 1))
        spans = [(mid - lengths[primary] // 2, mid - lengths[primary] // 2 + lengths[primary])]
        rows.append((r, c, spans[0][0], primary, int(rng.choice([1, -1])), True))
        inward = 1 if centre < size // 2 else -1
        for _ in range(n_sites - 1):
            m = int(rng.integers(len(motifs)))
            for _try in range(10):
                distance = coop.distance(rng, int(lengths[m]))
                side = inward if regions.edge_task[r] >= 0 else int(rng.choice([1, -1]))
                start = mid + side * distance - lengths[m] // 2
                span = (start, start + lengths[m])
                inside = 0 <= span[0] and span[1] <= size
                if inside and all(span[1] + coop.gap <= a or b + coop.gap <= span[0] for a, b in spans):
                    spans.append(span)
                    rows.append((r, c, start, m, int(rng.choice([1, -1])), False))
                    break
    return rows


def plant_sites(chroms: list[Chromosome], regions: Regions, motifs: list[motif_lib.Motif], active: np.ndarray,
                rng: np.random.Generator, coop: Cooperativity = Cooperativity()) -> Sites:
    """Lay out sites, draw their sequences, write them into the genome.

    Sites are drawn from the motif's matrix and redrawn until they pass its binding threshold, except a
    WEAK_SITES share of secondary sites drawn from a weakened matrix (mostly unbound decoys). Affinity rises
    geometrically from 1/AFFINITY_RANGE at the threshold to 1 at the best score, times the cooperative boost
    (``coop``: its dependence on distance and where secondary sites go).
    """
    layout = np.array(_site_layout(chroms, regions, motifs, active, rng, coop), dtype=np.int64)
    region, chrom, start, motif, strand, primary = layout.T
    n = region.size
    score = np.zeros(n)
    codes_of: dict[int, np.ndarray] = {}
    for m, mot in enumerate(motifs):
        idx = np.flatnonzero(motif == m)
        weak = np.where(rng.random(idx.size) < WEAK_SITES, rng.uniform(0.5, 0.9, idx.size), 0.0)
        weak[primary[idx] == 1] = 0.0
        seqs = motif_lib.sample(mot, idx.size, rng, weakening=weak)
        scores = motif_lib.score(mot, seqs)
        redo = (weak == 0) & (scores < mot.threshold)
        while redo.any():
            seqs[redo] = motif_lib.sample(mot, int(redo.sum()), rng)
            scores = motif_lib.score(mot, seqs)
            redo = (weak == 0) & (scores < mot.threshold)
        score[idx] = scores
        for k, i in enumerate(idx):
            codes_of[int(i)] = seqs[k] if strand[i] == 1 else reverse_complement(seqs[k])
    for i in range(n):
        chroms[chrom[i]].codes[start[i]:start[i] + motifs[motif[i]].length] = codes_of[i]
    best = np.array([m.best_score for m in motifs])[motif]
    threshold = np.array([m.threshold for m in motifs])[motif]
    bound = score >= threshold
    affinity = np.where(bound, AFFINITY_RANGE ** (-(best - score) / (best - threshold)), 0.0)
    end = start + np.array([m.length for m in motifs])[motif]
    affinity *= _cooperative_boost(region, (start + end) / 2, motif, bound, coop)
    return Sites(chrom, start, end, strand, motif, score, bound, region, affinity)


def _cooperative_boost(region: np.ndarray, mid: np.ndarray, motif: np.ndarray, bound: np.ndarray,
                       coop: Cooperativity) -> np.ndarray:
    """Per site, the product of ``coop.boost`` over the bound partners in its region.

    Sites of a region are consecutive and at most three, so comparing neighbours at lags 1 and 2 covers all pairs.
    """
    boost = np.ones(region.size)
    for lag in (1, 2):
        a = np.arange(region.size - lag)
        b = a + lag
        pair = (region[a] == region[b]) & bound[a] & bound[b]
        factor = np.where(pair, coop.boost(np.abs(mid[a] - mid[b]), motif[a] == motif[b]), 1.0)
        boost[a] *= factor
        boost[b] *= factor
    return boost


def site_depths(sites: Sites, motifs: list[motif_lib.Motif], active: np.ndarray) -> np.ndarray:
    """Expected reads (both strands) of each task at each site (tasks × sites)."""
    depth = np.array([m.depth for m in motifs])[sites.motif]
    weight = np.where(active[:, sites.motif], 1.0, CROSSTALK)
    return weight * depth * sites.affinity


def bound_by_task(sites: Sites, active: np.ndarray, n_regions: int) -> np.ndarray:
    """(tasks × regions) bool: the region holds a bound site of one of the task's motifs."""
    out = np.zeros((active.shape[0], n_regions), dtype=bool)
    for task in range(active.shape[0]):
        hit = sites.bound & active[task, sites.motif]
        out[task, sites.region[hit]] = True
    return out


def call_peaks(length: int, centres: np.ndarray, counts: np.ndarray, background: np.ndarray,
               rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Summit = argmax of the smoothed observed counts within ± SUMMIT_SEARCH of each centre; narrowPeak stats.

    ``counts`` are the task's reads (strands summed) and ``background`` its expected rate without binding.
    Returns start, end, summit, observed reads, expected background reads, fold enrichment, -log10 p and q.
    """
    offsets = np.arange(-SUMMIT_SEARCH, SUMMIT_SEARCH + 1)
    pos = np.clip(centres[:, None] + offsets[None, :], 0, length - 1)
    smooth = gaussian_filter1d(counts.astype(np.float64), 8.0, mode="constant")[pos]
    summit = np.where(smooth.max(axis=1) > 0, pos[np.arange(pos.shape[0]), smooth.argmax(axis=1)], centres)
    start = np.maximum(summit - rng.integers(*PEAK_HALF_WIDTH, summit.size), 0)
    end = np.minimum(summit + rng.integers(*PEAK_HALF_WIDTH, summit.size), length)
    count_cum = np.concatenate([[0], np.cumsum(counts)])
    rate_cum = np.concatenate([[0.0], np.cumsum(background)])
    observed = count_cum[end] - count_cum[start]
    expected = rate_cum[end] - rate_cum[start]
    log10_p = np.minimum(-poisson.logsf(observed - 1, expected) / np.log(10), MAX_LOG10_P)
    return {"start": start, "end": end, "summit": summit, "observed": observed, "expected": expected,
            "fold": observed / np.maximum(expected, 1e-9), "log10_p": log10_p}


def choose_background(chroms: list[Chromosome], avoid: list[np.ndarray], target_gc: np.ndarray, count: int, *,
                      window_half: int, clearance: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """GC-matched background summits: (chrom index, summit) arrays of ``count`` loci, sorted.

    Candidates keep their whole sequence window (± ``window_half``) on the chromosome and free of N, and stay
    ``clearance`` bp from every ``avoid`` point (region centres); they are then drawn per GC bin (2 %) in the
    proportions of ``target_gc`` (the peaks' GC), topping up from the closest GC when a bin runs short.
    """
    sizes = np.array([c.length - 2 * window_half for c in chroms], dtype=np.float64)
    per_chrom = _allocate(40 * count + 200, np.maximum(sizes, 0))
    cand_chrom, cand_pos, cand_gc = [], [], []
    for c, chrom in enumerate(chroms):
        if per_chrom[c] == 0:
            continue
        pos = np.unique(rng.integers(window_half, chrom.length - window_half, per_chrom[c]))
        near = np.sort(avoid[c])
        i = np.searchsorted(near, pos)
        gap_left = np.abs(pos - near[np.clip(i - 1, 0, None)]) if near.size else np.full(pos.size, np.inf)
        gap_right = np.abs(near[np.clip(i, None, near.size - 1)] - pos) if near.size else np.full(pos.size, np.inf)
        ok = (np.minimum(gap_left, gap_right) >= clearance)
        ok &= n_count(chrom, pos - window_half, pos + window_half) == 0
        pos = pos[ok]
        cand_chrom.append(np.full(pos.size, c)), cand_pos.append(pos)
        cand_gc.append(gc_fraction(chrom, pos - window_half, pos + window_half))
    chrom_idx, pos, gc = (np.concatenate(x) for x in (cand_chrom, cand_pos, cand_gc))
    if pos.size < count:
        raise InputError(f"only {pos.size} background candidates away from peaks, {count} needed.",
                         fix="Ask for fewer peaks or longer chromosomes.")
    bins = np.linspace(0, 1, 51)
    target = _allocate(count, np.histogram(target_gc, bins)[0].astype(np.float64) + 1e-9)
    cand_bin = np.clip(np.digitize(gc, bins) - 1, 0, 49)
    chosen = np.zeros(pos.size, dtype=bool)
    for b in np.flatnonzero(target):
        members = rng.permutation(np.flatnonzero(cand_bin == b))[: target[b]]
        chosen[members] = True
    short = count - int(chosen.sum())
    if short:
        rest = np.flatnonzero(~chosen)
        closest = rest[np.argsort(np.abs(gc[rest] - np.median(target_gc)), kind="stable")[:short]]
        chosen[closest] = True
    order = np.lexsort((pos[chosen], chrom_idx[chosen]))
    return chrom_idx[chosen][order], pos[chosen][order]


def write_narrowpeak(path: Path, rows: list[tuple]) -> None:
    """Write narrowPeak rows (chrom, start, end, name, score, strand, signal, p, q, summit offset)."""
    lines = ["\t".join(str(v) for v in row) + "\n" for row in rows]
    path.write_text("".join(lines))
