"""``bpnetz simulate``: a realistic synthetic ChIP-nexus experiment, the embedded default for the demo and tests.

It writes, under OUT::

    genome.fa(.fai) chrom.sizes chroms.txt           genome with GC segments, N runs, soft-masking, IUPAC letters
    data/plus.bw data/minus.bw                        stranded 5'-end counts (task k>0: data/task{k}_plus.bw …)
    data/signal.bw                                    instead, with --unstranded (strands summed)
    data/control_plus.bw data/control_minus.bw        control counts (data/control.bw when unstranded)
    data/peaks.bed (task{k}_peaks.bed)  data/background.bed     narrowPeak files with summits
    input_data.json bpnet_params.json splits.json     the reference tool's three JSON files (paths relative to OUT)
    truth/motifs.meme truth/motifs.json truth/sites.tsv truth/expected_{plus,minus}.bw truth/summary.json

Everything derives from one seeded generator, so a seed gives byte-identical files (all but bpnetz's output
marker, which records when and how). The experiment is built in a temporary directory beside OUT and swapped in
when complete (:func:`bpnetz.files.atomic.output_directory`); ``--force`` replaces only an earlier bpnetz output. The
modelling choices live in ``simulate_genome`` (sequence), ``simulate_loci`` (regions, sites, peaks, background) and
``simulate_signal`` (rates, counts, bigWigs).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from bpnetz.errors import InputError
from bpnetz.files.atomic import output_directory
from bpnetz.genome import motif as motif_lib
from bpnetz.preprocess.counts_loss_weight import counts_loss_weight
from bpnetz.simulate import genome as genome_lib
from bpnetz.simulate import loci as loci_lib
from bpnetz.simulate import signal as signal_lib
from bpnetz.simulate.variation import Variation, resolve_motifs, strength_factors

BACKGROUND_RATIO = Variation().background_ratio  # negatives per peak by default
LOSS_WEIGHT_WIDTH = 1000  # the reference's --peak-width default for the counts loss weight
IUPAC_PER_CHROM = 2


@dataclass(frozen=True)
class SimulationOptions:
    """Every parameter of a simulation (recorded in truth/summary.json)."""

    seed: int = 0
    n_chroms: int = 6
    chrom_length: int = 1_000_000
    n_peaks: int = 2000
    tasks: int = 1
    motifs: tuple[str, ...] = motif_lib.DEFAULT_MOTIFS
    input_len: int = 2114
    output_len: int = 1000
    max_jitter: int = 128
    stranded: bool = True
    control: bool = True
    bias_smoothing: tuple[float, int] | None = None
    long_chrom_name: bool = False
    chrom_names: tuple[str, ...] | None = None
    variation: Variation = field(default_factory=Variation)

    @property
    def window_half(self) -> int:
        """Half the stored sequence window: loci closer than this to a chromosome end cross it."""
        return self.input_len // 2 + self.max_jitter

    def validate(self) -> None:
        """Raise InputError for options that cannot make an experiment."""
        problems = []
        if self.n_chroms < 3:
            problems.append("--n-chroms must be at least 3 (test chr1, validation chr2, training the rest)")
        if self.tasks < 1:
            problems.append("--tasks must be at least 1")
        if not 0 < self.output_len <= self.input_len:
            problems.append("--output-len must be positive and at most --input-len")
        if self.max_jitter < 0:
            problems.append("--max-jitter must be >= 0")
        if self.chrom_length < 20 * self.window_half:
            problems.append(f"--chrom-length must be at least {20 * self.window_half} (20 sequence windows)")
        if self.bias_smoothing is not None and not (self.bias_smoothing[0] > 0 and self.bias_smoothing[1] > 0):
            problems.append("--bias-smoothing needs a positive SIGMA and WINDOW")
        problems += self.variation.problems()
        if problems:
            raise InputError("invalid simulation options: " + "; ".join(problems) + ".")
        resolve_motifs(self.motifs)


@dataclass(frozen=True)
class SimulationSummary:
    """What a simulation wrote and its main counts; paths are absolute."""

    out: Path
    genome: Path
    chrom_sizes: Path
    input_data: Path
    bpnet_params: Path
    splits: Path
    peaks: tuple[Path, ...]
    background: Path
    truth: Path
    chroms: tuple[str, ...]
    genome_length: int
    n_peaks: tuple[int, ...]
    n_edge_peaks: tuple[int, ...]
    n_background: int
    n_sites: int
    n_bound_sites: int
    sites_per_motif: dict[str, int] = field(default_factory=dict)
    counts_loss_weight: float = 0.0
    seconds: float = 0.0

    def describe(self) -> str:
        """One paragraph for the command line."""
        motifs = ", ".join(f"{name} {n}" for name, n in self.sites_per_motif.items())
        peaks = " + ".join(str(n) for n in self.n_peaks)
        return (f"Simulated {len(self.chroms)} chromosomes ({self.genome_length / 1e6:.2f} Mb), {peaks} peaks "
                f"({sum(self.n_edge_peaks)} near chromosome ends), {self.n_background} background loci and "
                f"{self.n_sites} planted sites ({self.n_bound_sites} bound; {motifs}) into {self.out} in "
                f"{self.seconds:.1f} s. Counts loss weight {self.counts_loss_weight}. Run the next steps from "
                f"inside it, e.g. 'cd {self.out} && bpnetz build --input-data input_data.json "
                f"--reference-genome genome.fa --chrom-sizes chrom.sizes …'.")


def _dilation_layers(input_len: int, output_len: int) -> int:
    """The reference's 8 dilated layers, or fewer when the default trunk (motif conv 21, kernel 3, profile head 75)
    would leave less than ``output_len`` positions: layer i (1-based) removes 2·2^i positions."""
    layers, remaining = 0, input_len - 20 - 74
    while layers < 8 and remaining - 2 * 2 ** (layers + 1) >= output_len:
        layers += 1
        remaining -= 2 * 2 ** layers
    return layers


def simulate(out: Path | str, *, seed: int = 0, n_chroms: int = 6, chrom_length: int = 1_000_000,
             n_peaks: int = 2000, tasks: int = 1, motifs: list[str] | tuple[str, ...] | None = None,
             input_len: int = 2114, output_len: int = 1000, max_jitter: int = 128, stranded: bool = True,
             control: bool = True, bias_smoothing: tuple[float, int] | None = None, long_chrom_name: bool = False,
             chrom_names: list[str] | tuple[str, ...] | None = None, variation: Variation | None = None,
             progress: bool = True, force: bool = False) -> SimulationSummary:
    """Write a synthetic experiment to ``out`` (see the module docstring) and return its summary.

    ``n_peaks`` is the number of bound regions in the genome; each task's peak file lists the regions holding a
    bound site of that task's motifs (all of them for one task). ``chrom_names`` names the chromosomes instead
    of chr1 … chrN (e.g. hg38's names, to run the reference tutorial's commands verbatim). ``variation`` sets the
    knobs of :mod:`bpnetz.simulate.variation` (motif sets come through ``motifs``, e.g. ``jaspar:CTCF``). A
    non-empty ``out`` is refused unless ``force``.
    """
    if chrom_names:
        n_chroms = len(chrom_names)
    opts = SimulationOptions(seed=seed, n_chroms=n_chroms, chrom_length=chrom_length, n_peaks=n_peaks, tasks=tasks,
                             motifs=tuple(motifs) if motifs else motif_lib.DEFAULT_MOTIFS, input_len=input_len,
                             output_len=output_len, max_jitter=max_jitter, stranded=stranded, control=control,
                             bias_smoothing=tuple(bias_smoothing) if bias_smoothing else None,  # type: ignore
                             long_chrom_name=long_chrom_name,
                             chrom_names=tuple(chrom_names) if chrom_names else None,
                             variation=variation or Variation())
    opts.validate()
    out = Path(out).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise InputError("the output exists and is not empty.", path=out,
                         fix="Choose a new directory or pass --force to replace it.")
    began = time.perf_counter()
    with output_directory(out, what="simulated experiment") as partial:  # --force replaces only bpnetz's output
        counts = _write_experiment(partial, opts, progress)
    return _summary(out, opts, counts, time.perf_counter() - began)


def task_prefix(task: int) -> str:
    """File-name prefix of a task's files: '' for task 0, 'task{k}_' otherwise."""
    return "" if task == 0 else f"task{task}_"


def _signal_names(opts: SimulationOptions, task: int) -> list[str]:
    """Relative paths of a task's signal bigWigs."""
    p = task_prefix(task)
    return [f"data/{p}plus.bw", f"data/{p}minus.bw"] if opts.stranded else [f"data/{p}signal.bw"]


def _control_names(opts: SimulationOptions) -> list[str]:
    return ["data/control_plus.bw", "data/control_minus.bw"] if opts.stranded else ["data/control.bw"]


def _write_experiment(root: Path, opts: SimulationOptions, progress: bool) -> dict:
    """Simulate and write every file under ``root``; return the counts for the summary."""
    (root / "data").mkdir(parents=True)
    (root / "truth").mkdir()
    rng = np.random.default_rng(opts.seed)
    motifs = resolve_motifs(opts.motifs)
    active = loci_lib.task_motifs(opts.tasks, len(motifs))
    sizes = genome_lib.chromosome_names_lengths(opts.n_chroms, opts.chrom_length, opts.long_chrom_name,
                                                opts.chrom_names)
    bar = tqdm(total=2 * len(sizes) + 2, desc="simulate", unit="step", disable=not progress)
    chroms = []
    for name, length in sizes:
        chroms.append(genome_lib.make_chromosome(name, length, 3 * opts.window_half + 500, rng))
        bar.update()
    regions = loci_lib.place_regions(chroms, opts.n_peaks, opts.tasks, window_half=opts.window_half,
                                     spacing=max(400, opts.output_len // 2), rng=rng)
    sites = loci_lib.plant_sites(chroms, regions, motifs, active, rng, _cooperativity(opts.variation))
    sites.affinity *= strength_factors(sites.affinity.size, opts.variation.strength_noise, rng)
    depths = opts.variation.depth * loci_lib.site_depths(sites, motifs, active)
    bound = loci_lib.bound_by_task(sites, active, regions.chrom.size)
    bumps = signal_lib.control_bumps([c.length for c in chroms], regions.chrom, regions.center, rng)
    background = _background(chroms, regions, bound, opts, rng)
    for c, chrom in enumerate(chroms):
        avoid = np.concatenate([regions.center[regions.chrom == c], background[1][background[0] == c]])
        genome_lib.place_iupac(chrom, avoid, opts.window_half + loci_lib.SUMMIT_SEARCH + 50, IUPAC_PER_CHROM, rng)
    genome_lib.write_fasta(root / "genome.fa", chroms)
    genome_lib.write_chrom_files(root, chroms)
    bar.update()
    peaks, totals, peak_reads = _write_signals(root, chroms, regions, sites, depths, bound, bumps, motifs, opts,
                                               rng, bar)
    for task, rows in enumerate(peaks):
        _write_peaks(root / f"data/{task_prefix(task)}peaks.bed", rows)
    _write_background(root / "data/background.bed", chroms, *background)
    loss_weight = round(counts_loss_weight([np.concatenate(task) for task in peak_reads]), 2)
    _write_configs(root, opts, [c.name for c in chroms], loss_weight)
    counts = _truth(root, chroms, regions, sites, motifs, active, peaks, background, totals, loss_weight, opts)
    bar.update()
    bar.close()
    return counts


def _cooperativity(variation: Variation) -> loci_lib.Cooperativity:
    return loci_lib.Cooperativity(variation.cooperative_spacing, variation.cooperative_width,
                                  variation.cooperative_strength)


def _cooperativity_truth(variation: Variation) -> dict:
    """summary.json's record of how pair boosts depend on distance (the spacing a syntax experiment should find)."""
    coop = _cooperativity(variation)
    if coop.spacing:
        return {"shape": "gaussian", "spacing": coop.spacing, "width": coop.width,
                "boost_different_motifs": coop.strength,
                "boost_same_motif": round(coop.strength * loci_lib.COOP_SAME / loci_lib.COOP_DIFFERENT, 6)}
    return {"shape": "linear", "spacing": None, "zero_at": loci_lib.PAIR_CLOSE,
            "boost_different_motifs": loci_lib.COOP_DIFFERENT, "boost_same_motif": loci_lib.COOP_SAME}


def _background(chroms: list[genome_lib.Chromosome], regions: loci_lib.Regions, bound: np.ndarray,
                opts: SimulationOptions, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """GC-matched background loci: background_ratio × the largest task's peaks, plus a few, away from regions."""
    n_max = int(bound.sum(axis=1).max())
    count = math.ceil(opts.variation.background_ratio * n_max) + max(3, n_max // 50)
    half = opts.input_len // 2
    region_gc = np.concatenate([
        genome_lib.gc_fraction(chrom, regions.center[regions.chrom == c] - half,
                               regions.center[regions.chrom == c] + half) for c, chrom in enumerate(chroms)])
    avoid = [regions.center[regions.chrom == c] for c in range(len(chroms))]
    clearance = opts.output_len // 2 + opts.max_jitter + loci_lib.PEAK_HALF_WIDTH[1] + loci_lib.SUMMIT_SEARCH
    return loci_lib.choose_background(chroms, avoid, region_gc[bound.any(axis=0)], count,
                                      window_half=opts.window_half, clearance=clearance, rng=rng)


def _write_signals(root: Path, chroms: list[genome_lib.Chromosome], regions: loci_lib.Regions,
                   sites: loci_lib.Sites, depths: np.ndarray, bound: np.ndarray, bumps: signal_lib.Bumps,
                   motifs: list[motif_lib.Motif], opts: SimulationOptions, rng: np.random.Generator,
                   bar: tqdm) -> tuple[list[list[tuple]], dict[str, int], list[list[np.ndarray]]]:
    """Rates, Poisson counts and bigWigs chromosome by chromosome; peak calls per task.

    Every track (both strands, controls) is drawn whatever the options, so --unstranded or --no-control change
    only what is written, never the counts. Returns peak rows per task, total counts per written file and, per
    task and chromosome, the reads of each peak and written track around its summit (for the loss weight).
    """
    chrom_sizes = [(c.name, c.length) for c in chroms]
    writers: dict[str, signal_lib.BigWigWriter] = {}

    def writer(name: str, sparse: bool = True) -> signal_lib.BigWigWriter:
        if name not in writers:
            writers[name] = signal_lib.BigWigWriter(root / name, chrom_sizes, sparse=sparse)
        return writers[name]

    totals: dict[str, int] = {}
    peaks: list[list[tuple]] = [[] for _ in range(opts.tasks)]
    peak_reads: list[list[np.ndarray]] = [[] for _ in range(opts.tasks)]
    names = regions.names
    for c, chrom in enumerate(chroms):
        control = signal_lib.control_rates(chrom.length, bumps, c)
        control_counts = [rng.poisson(rate) for rate in control]
        if opts.control:
            _emit(writer, totals, _control_names(opts), control_counts, opts.stranded, chrom.name)
        gc = chrom.gc_per_base()
        var = opts.variation
        base = [signal_lib.chip_background(gc, rate, depth=var.depth, leak=var.control_leak) for rate in control]
        on = sites.chrom == c
        for task in range(opts.tasks):
            footprint = signal_lib.footprints(chrom.length, sites.start[on], sites.end[on], sites.motif[on],
                                              depths[task, on], motifs, shape=var.footprint,
                                              scale=var.footprint_scale)
            rates = [b + f for b, f in zip(base, footprint)]
            counts = [rng.poisson(rate) for rate in rates]
            tracks = _emit(writer, totals, _signal_names(opts, task), counts, opts.stranded, chrom.name)
            p = task_prefix(task)
            for strand, rate in zip(("plus", "minus"), rates):
                writer(f"truth/{p}expected_{strand}.bw", sparse=False).add(chrom.name, rate)
            mine = np.flatnonzero((regions.chrom == c) & bound[task])
            calls = loci_lib.call_peaks(chrom.length, regions.center[mine], counts[0] + counts[1],
                                        base[0] + base[1], rng)
            for i, r in enumerate(mine):
                peaks[task].append((c, chrom.name, int(calls["start"][i]), int(calls["end"][i]), names[r],
                                    float(calls["fold"][i]), float(calls["log10_p"][i]),
                                    int(calls["summit"][i] - calls["start"][i])))
            peak_reads[task].append(_summit_window_reads(tracks, calls["summit"], chrom.length))
        bar.update()
    for w in writers.values():
        w.close()
    return peaks, totals, peak_reads


def _emit(writer, totals: dict[str, int], names: list[str], counts: list[np.ndarray], stranded: bool,
          chrom: str) -> list[np.ndarray]:
    """Write + and − counts (or their sum when unstranded) to ``names``; return the written tracks."""
    tracks = counts if stranded else [counts[0] + counts[1]]
    for name, track in zip(names, tracks):
        writer(name).add(chrom, track)
        totals[name] = totals.get(name, 0) + int(track.sum())
    return tracks


def _summit_window_reads(tracks: list[np.ndarray], summits: np.ndarray, length: int) -> np.ndarray:
    """(peaks, tracks) reads in summit ± LOSS_WEIGHT_WIDTH/2, clipped to the chromosome (as counts-loss-weight)."""
    start = np.clip(summits - LOSS_WEIGHT_WIDTH // 2, 0, length)
    end = np.clip(summits + LOSS_WEIGHT_WIDTH // 2, 0, length)
    out = np.zeros((summits.size, len(tracks)))
    for k, track in enumerate(tracks):
        cum = np.concatenate([[0], np.cumsum(track)])
        out[:, k] = cum[end] - cum[start]
    return out


def _write_peaks(path: Path, rows: list[tuple]) -> None:
    """narrowPeak sorted by chromosome and start; score and q-value from the Poisson p-value (Bonferroni)."""
    rows = sorted(rows, key=lambda r: (r[0], r[2], r[4]))
    log_n = math.log10(max(len(rows), 1))
    out = []
    for _, chrom, start, end, name, fold, log10_p, summit in rows:
        q = max(0.0, log10_p - log_n)
        out.append((chrom, start, end, name, min(1000, int(round(10 * log10_p))), ".", f"{fold:.2f}",
                    f"{log10_p:.2f}", f"{q:.2f}", summit))
    loci_lib.write_narrowpeak(path, out)


def _write_background(path: Path, chroms: list[genome_lib.Chromosome], chrom_idx: np.ndarray,
                      summits: np.ndarray) -> None:
    """Background loci as narrowPeak: 200 bp around the summit, no signal columns (-1)."""
    rows = []
    for i, (c, s) in enumerate(zip(chrom_idx, summits)):
        start = max(int(s) - 100, 0)
        rows.append((chroms[c].name, start, min(int(s) + 100, chroms[c].length), f"background_{i:05d}", 0, ".",
                     "0", "-1", "-1", int(s) - start))
    loci_lib.write_narrowpeak(path, rows)


def _write_configs(root: Path, opts: SimulationOptions, chrom_names: list[str], loss_weight: float) -> None:
    """input_data.json, bpnet_params.json and splits.json in the reference tool's format."""
    smoothing = list(opts.bias_smoothing) if opts.bias_smoothing else None
    input_data = {}
    for task in range(opts.tasks):
        spec: dict = {"signal": {"source": _signal_names(opts, task)},
                      "loci": {"source": [f"data/{task_prefix(task)}peaks.bed"]},
                      "background_loci": {"source": ["data/background.bed"],
                                          "ratio": [opts.variation.background_ratio]}}
        if opts.control:
            controls = _control_names(opts)
            spec["bias"] = {"source": controls, "smoothing": [smoothing] * len(controls)}
        input_data[str(task)] = spec
    params = {
        "input_len": opts.input_len,
        "output_profile_len": opts.output_len,
        "motif_module_params": {"filters": [64], "kernel_sizes": [21], "padding": "valid"},
        "syntax_module_params": {"num_dilation_layers": _dilation_layers(opts.input_len, opts.output_len),
                                 "filters": 64, "kernel_size": 3, "padding": "valid",
                                 "pre_activation_residual_unit": True},
        "profile_head_params": {"filters": 1, "kernel_size": 75, "padding": "valid"},
        "counts_head_params": {"units": [1] if opts.tasks == 1 else [-1], "dropouts": [0.0],
                               "activations": ["linear"]},
        "profile_bias_module_params": {"kernel_sizes": [1] * opts.tasks},
        "counts_bias_module_params": {},
        "use_attribution_prior": False,
        "attribution_prior_params": {"frequency_limit": 150, "limit_softness": 0.2, "grad_smooth_sigma": 3,
                                     "profile_grad_loss_weight": 200, "counts_grad_loss_weight": 100},
        "loss_weights": [1, loss_weight],
        "counts_loss": "MSE",
    }
    splits = {"0": {"test": [chrom_names[0]], "val": [chrom_names[1]], "train": chrom_names[2:]}}
    for name, data in (("input_data.json", input_data), ("bpnet_params.json", params), ("splits.json", splits)):
        (root / name).write_text(_json_text(data))


def _json_text(data: dict) -> str:
    """JSON indented like the reference's examples: objects one key per line, lists of scalars on one line."""
    text = json.dumps(data, indent=4)
    flat = re.compile(r"\[([^\[\]{}]*)\]")
    return flat.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]"
                    if m.group(1).strip() else "[]", text) + "\n"


def _truth(root: Path, chroms: list[genome_lib.Chromosome], regions: loci_lib.Regions, sites: loci_lib.Sites,
           motifs: list[motif_lib.Motif], active: np.ndarray, peaks: list[list[tuple]],
           background: tuple[np.ndarray, np.ndarray], totals: dict[str, int], loss_weight: float,
           opts: SimulationOptions) -> dict:
    """truth/: motif matrices, every planted site, and summary.json; returns the summary's counts."""
    motif_lib.write_meme(root / "truth/motifs.meme", motifs)
    motif_lib.write_json(root / "truth/motifs.json", motifs)
    names = regions.names
    order = np.lexsort((sites.start, sites.chrom))
    lines = ["chrom\tstart\tend\tstrand\tmotif\tscore\tbound\tpeak_name\taffinity\n"]
    for i in order:
        lines.append(f"{chroms[sites.chrom[i]].name}\t{sites.start[i]}\t{sites.end[i]}\t"
                     f"{'+' if sites.strand[i] > 0 else '-'}\t{motifs[sites.motif[i]].name}\t{sites.score[i]:.3f}\t"
                     f"{int(sites.bound[i])}\t{names[sites.region[i]]}\t{sites.affinity[i]:.4f}\n")
    (root / "truth/sites.tsv").write_text("".join(lines))
    edge = [[r[4] for r in rows if r[2] + r[7] < opts.window_half
             or chroms[r[0]].length - (r[2] + r[7]) <= opts.window_half] for rows in peaks]
    per_motif = {m.name: {"consensus": m.consensus, "length": m.length, "threshold": m.threshold,
                          "sites": int((sites.motif == j).sum()),
                          "bound": int((sites.bound & (sites.motif == j)).sum()),
                          "regions": int(np.unique(sites.region[sites.bound & (sites.motif == j)]).size)}
                 for j, m in enumerate(motifs)}
    counts = {
        "seed": opts.seed,
        "options": asdict(opts),
        "motifs": [m.name for m in motifs],
        "task_motifs": {str(t): [m.name for j, m in enumerate(motifs) if active[t, j]] for t in range(opts.tasks)},
        "chroms": {c.name: c.length for c in chroms},
        "genome_length": sum(c.length for c in chroms),
        "n_bases_N": int(sum(int((c.codes == 4).sum()) for c in chroms)),
        "n_iupac": int(sum(c.iupac.size for c in chroms)),
        "n_soft_masked": int(sum(int(c.lower.sum()) for c in chroms)),
        "n_regions": int(regions.chrom.size),
        "n_peaks": {str(t): len(rows) for t, rows in enumerate(peaks)},
        "edge_peaks": {str(t): e for t, e in enumerate(edge)},
        "n_background": int(background[0].size),
        "n_sites": int(sites.chrom.size),
        "n_bound_sites": int(sites.bound.sum()),
        "sites_per_motif": per_motif,
        "total_counts": totals,
        "counts_loss_weight": loss_weight,
        "cooperativity": _cooperativity_truth(opts.variation),
    }
    (root / "truth/summary.json").write_text(json.dumps(counts, indent=2) + "\n")
    return counts


def _summary(out: Path, opts: SimulationOptions, counts: dict, seconds: float) -> SimulationSummary:
    return SimulationSummary(
        out=out, genome=out / "genome.fa", chrom_sizes=out / "chrom.sizes", input_data=out / "input_data.json",
        bpnet_params=out / "bpnet_params.json", splits=out / "splits.json",
        peaks=tuple(out / f"data/{task_prefix(t)}peaks.bed" for t in range(opts.tasks)),
        background=out / "data/background.bed", truth=out / "truth", chroms=tuple(counts["chroms"]),
        genome_length=counts["genome_length"], n_peaks=tuple(counts["n_peaks"].values()),
        n_edge_peaks=tuple(len(e) for e in counts["edge_peaks"].values()), n_background=counts["n_background"],
        n_sites=counts["n_sites"], n_bound_sites=counts["n_bound_sites"],
        sites_per_motif={k: v["sites"] for k, v in counts["sites_per_motif"].items()},
        counts_loss_weight=counts["counts_loss_weight"], seconds=seconds)
