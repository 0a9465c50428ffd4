"""``bpnetz syntax``: motif marginalization, the BPNet paper's in-silico experiment on motif grammar.

A motif (a DNA consensus, a MEME file entry: its most likely base per position, or a tfmodisco-lite pattern: its
trimmed consensus) is inserted into N dinucleotide-shuffled backgrounds, and its marginal effect is the change in
predictions averaged over them: per task, the log-count change log(with motif) − log(background) (mean, standard
deviation, standard error over backgrounds) and the mean predicted profile with and without it.

Backgrounds: the input windows of the ``--regions`` intervals (summit- or midpoint-centred, N-free), each
dinucleotide-shuffled (:mod:`bpnetz.shap.shuffle`) with the generator (seed, background index), cycling through
the regions when N exceeds their number. The seed and each background's source region are recorded in syntax.h5.
Bias inputs are those of the source region's output window (zeros with ``--zero-controls``): the same for a
background with and without motifs, so only the sequence changes.

With a second motif: motif A at the window centre, motif B at centre-to-centre spacing d to its right, for every
d from the smallest without overlap to ``max_spacing``, B in both orientations (``same``: as given; ``opposite``:
reverse complement). For each d and orientation: joint = log(A+B) − log(background), B alone at the same place,
and the cooperativity excess = joint − effect(A) − effect(B alone): zero when the two act independently
(additively in log counts), positive where they cooperate. The curve of the excess against d is the
cooperativity curve (``spacing.png``), and its peak is printed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bpnetz.errors import InputError
from bpnetz.files.atomic import write_text
from bpnetz.files.h5 import h5_output
from bpnetz.genome.sequence import BASES, decode, encode, one_hot, reverse_complement
from bpnetz.insilico.session import ModelSession

DEFAULT_SEED = 20210304
ORIENTATIONS = ("same", "opposite")


def motif_codes(spec: str) -> tuple[str, np.ndarray]:
    """(name, base codes) of a motif given as ACGT text, ``FILE.meme[:NAME]`` or ``modisco.h5[:PATTERN]``."""
    path, _, name = spec.partition(":") if ":" in spec and Path(spec.partition(":")[0]).is_file() else (spec, "", "")
    if not Path(path).is_file():
        if spec and all(c in BASES for c in spec.upper()):
            return spec.upper(), encode(spec)
        raise InputError(f"motif {spec!r} is neither A/C/G/T text nor an existing file.",
                         fix="Give a consensus (e.g. GATAAG), FILE.meme[:MOTIF] or modisco_results.h5[:PATTERN].")
    if Path(path).suffix in (".h5", ".hdf5"):
        from bpnetz.motifs.modisco import load_patterns

        patterns = {p.name: p for p in load_patterns(path)}
        chosen = _pick(patterns, name, path, "pattern")
        return chosen, encode(patterns[chosen].consensus)
    from bpnetz.genome.motif import read_meme_motifs

    motifs = read_meme_motifs(path)
    chosen = _pick(motifs, name, path, "motif")
    return chosen, motifs[chosen].argmax(axis=1).astype(np.uint8)


def _pick(entries: dict, name: str, path: str, what: str) -> str:
    if not name:
        return next(iter(entries))
    if name not in entries:
        raise InputError(f"no {what} {name!r} (it holds {', '.join(list(entries)[:8])}).", path=path,
                         fix=f"Name one of its {what}s after the colon.")
    return name


@dataclass
class Backgrounds:
    codes: np.ndarray  # (n, input_len) shuffled sequences
    source: np.ndarray  # index of the source region
    chrom: np.ndarray  # source region's chromosome and input-window start
    in_start: np.ndarray
    seed: int


def make_backgrounds(regions_bed: str | Path, fasta: str | Path, input_len: int, n: int, seed: int) -> Backgrounds:
    """N dinucleotide-shuffled backgrounds from the regions' input windows (see the module docstring)."""
    from bpnetz.insilico.ism import ism_regions
    from bpnetz.shap.shuffle import reference_shuffles

    regions = ism_regions(regions_bed, fasta, input_len, input_len)
    if not len(regions.chrom):
        raise InputError("no interval has an N-free input window inside its chromosome.", path=regions_bed,
                         fix="Pass intervals (e.g. peaks) away from chromosome ends and N runs.")
    source = np.arange(n) % len(regions.chrom)
    codes = np.stack([reference_shuffles(regions.codes[s:s + 1], 1, seed, [i])[0, 0] for i, s in enumerate(source)])
    return Backgrounds(codes, source, regions.chrom[source], regions.in_start[source], seed)


def insert(codes: np.ndarray, motif: np.ndarray, centre: int) -> np.ndarray:
    """Copies of (n, L) sequences with the motif written so that its centre (length // 2) sits at ``centre``."""
    out = np.array(codes, copy=True)
    start = centre - len(motif) // 2
    out[:, start:start + len(motif)] = motif
    return out


def log_totals(session: ModelSession, codes: np.ndarray, bias: dict[str, np.ndarray]) -> tuple[np.ndarray,
                                                                                                np.ndarray]:
    """Per task log of the predicted total counts (n, tasks), and the predicted counts (n, L, T)."""
    counts = session.counts(session.predict(one_hot(codes, dtype=np.float32), bias))
    totals = np.stack([counts[:, :, session.layout.task_tracks(t)].sum(axis=(1, 2))
                       for t in range(len(session.layout.tasks))], axis=1)
    return np.log(totals + 1e-12), counts


def _mean_sem(values: np.ndarray) -> np.ndarray:
    """(mean, standard error) over axis 0."""
    n = len(values)
    sem = values.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(values.shape[1:])
    return np.stack([values.mean(axis=0), sem], axis=-1)


def spacing_curve(session: ModelSession, bg: Backgrounds, bias: dict[str, np.ndarray], base: np.ndarray,
                  motif_a: np.ndarray, motif_b: np.ndarray, spacings: np.ndarray) -> dict[str, np.ndarray]:
    """Per orientation: joint, B-alone and excess effects (spacings, tasks, n backgrounds) (module docstring)."""
    centre = session.input_len // 2
    with_a = insert(bg.codes, motif_a, centre)
    effect_a = log_totals(session, with_a, bias)[0] - base
    out = {}
    for orientation in ORIENTATIONS:
        b = motif_b if orientation == "same" else reverse_complement(motif_b)
        joint, alone = [], []
        for d in spacings:
            joint.append(log_totals(session, insert(with_a, b, centre + int(d)), bias)[0] - base)
            alone.append(log_totals(session, insert(bg.codes, b, centre + int(d)), bias)[0] - base)
        joint_arr, alone_arr = np.stack(joint).transpose(0, 2, 1), np.stack(alone).transpose(0, 2, 1)
        out[orientation] = {"joint": joint_arr, "b_alone": alone_arr,
                            "excess": joint_arr - alone_arr - effect_a.T[None]}
    return out


def spacing_range(motif_a: np.ndarray, motif_b: np.ndarray, max_spacing: int, input_len: int) -> np.ndarray:
    """Centre-to-centre spacings from the closest without overlap to max_spacing (inside the window)."""
    lo = len(motif_a) - len(motif_a) // 2 + len(motif_b) // 2
    hi = min(max_spacing, input_len - input_len // 2 - (len(motif_b) - len(motif_b) // 2))
    if hi < lo:
        raise InputError(f"--max-spacing {max_spacing} leaves no spacing (the motifs need at least {lo} bp).",
                         fix=f"Pass --max-spacing of at least {lo}.")
    return np.arange(lo, hi + 1)


@dataclass
class SyntaxSummary:
    lines: list[str]
    seconds: float
    files: list[Path]

    def format(self) -> str:
        return "\n".join(self.lines + [f"in {self.seconds:.1f} s. Outputs: " + ", ".join(map(str, self.files))])


def _single_table(tasks: list[str], effects: dict[str, np.ndarray]) -> str:
    """syntax.tsv: per motif and task, the log-count change over backgrounds (mean, sd, standard error, n)."""
    rows = ["motif\ttask\tmean_logfc\tsd_logfc\tsem_logfc\tn_backgrounds"]
    for name, effect in effects.items():
        for t, task in enumerate(tasks):
            v = effect[:, t]
            sd = v.std(ddof=1)
            rows.append(f"{name}\t{task}\t{v.mean():.6g}\t{sd:.6g}\t{sd / np.sqrt(len(v)):.6g}\t{len(v)}")
    return "\n".join(rows) + "\n"


def _spacing_table(spacings: np.ndarray, tasks: list[str], curve: dict) -> str:
    rows = ["spacing\torientation\ttask\tjoint_mean\tjoint_sem\tb_alone_mean\texcess_mean\texcess_sem"]
    for orientation, parts in curve.items():
        stats = {k: _mean_sem(np.moveaxis(v, 2, 0)) for k, v in parts.items()}  # (spacings, tasks, 2)
        for s, d in enumerate(spacings):
            for t, task in enumerate(tasks):
                j, b, e = stats["joint"][s, t], stats["b_alone"][s, t], stats["excess"][s, t]
                rows.append(f"{d}\t{orientation}\t{task}\t{j[0]:.6g}\t{j[1]:.6g}\t{b[0]:.6g}\t{e[0]:.6g}\t{e[1]:.6g}")
    return "\n".join(rows) + "\n"


def run_syntax(session: ModelSession, motifs: list[str], regions_bed: str | Path, reference_genome: str | Path,
               output_dir: str | Path, *, n_backgrounds: int = 64, seed: int = DEFAULT_SEED,
               max_spacing: int = 150, task: int = 0) -> SyntaxSummary:
    """Marginal effect of one motif, or the spacing curves of two (see the module docstring); writes
    syntax.tsv (single-motif effects), spacing.tsv + spacing.png (two motifs), syntax.h5 and profile.png."""
    from bpnetz.insilico.plots import plot_profiles, plot_spacing

    if not 1 <= len(motifs) <= 2 or n_backgrounds < 2:
        raise InputError("give one or two --motif and --n-backgrounds of at least 2.")
    if not 0 <= task < len(session.layout.tasks):
        raise InputError(f"--task-id {task} does not exist (the model has {len(session.layout.tasks)} tasks).")
    started = time.perf_counter()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    named = [motif_codes(spec) for spec in motifs]
    for name, codes in named:
        if len(codes) > session.input_len // 4:
            raise InputError(f"motif {name} is {len(codes)} bp, more than a quarter of the model's input "
                             f"({session.input_len} bp).", fix="Insert a shorter motif (trim its flanks).")
    bg = make_backgrounds(regions_bed, reference_genome, session.input_len, n_backgrounds, seed)
    bias = session.bias(bg.chrom, bg.in_start + session.input_len // 2 - session.output_len // 2)
    base, base_counts = log_totals(session, bg.codes, bias)
    tasks = session.layout.tasks
    lines, files, singles = [], [], {}
    for name, codes in named:
        logs, counts = log_totals(session, insert(bg.codes, codes, session.input_len // 2), bias)
        singles[name] = (logs - base, counts.mean(axis=0))
        change = ", ".join(f"{t} {v:+.3f}" for t, v in zip(tasks, (logs - base).mean(axis=0), strict=True))
        lines.append(f"{name} ({decode(codes)}): mean log-count change {change} over {n_backgrounds} "
                     f"backgrounds (seed {seed})")
    files.append(write_text(output_dir / "syntax.tsv", _single_table(tasks, {k: v[0] for k, v in singles.items()})))
    files.append(plot_profiles(output_dir / "profile.png", base_counts.mean(axis=0), singles, session.layout, task))
    curve, spacings = None, None
    if len(named) == 2:
        spacings = spacing_range(named[0][1], named[1][1], max_spacing, session.input_len)
        curve = spacing_curve(session, bg, bias, base, named[0][1], named[1][1], spacings)
        files.append(write_text(output_dir / "spacing.tsv", _spacing_table(spacings, tasks, curve)))
        means = {o: _mean_sem(np.moveaxis(c["excess"][:, task], 1, 0)) for o, c in curve.items()}
        files.append(plot_spacing(output_dir / "spacing.png", spacings, means,
                                  f"{named[1][0]} relative to {named[0][0]} (task {tasks[task]})",
                                  "cooperativity: joint − A − B (log counts)"))
        for o, m in means.items():
            lines.append(f"{o} orientation: largest cooperativity excess {m[:, 0].max():+.3f} at spacing "
                         f"{int(spacings[m[:, 0].argmax()])} bp (task {tasks[task]})")
    files.append(_write_h5(output_dir / "syntax.h5", bg, named, singles, base, spacings, curve, session))
    return SyntaxSummary(lines, time.perf_counter() - started, files)


def _write_h5(path: Path, bg: Backgrounds, named: list, singles: dict, base: np.ndarray, spacings, curve,
              session: ModelSession) -> Path:
    import h5py

    with h5_output(path) as f:  # built in memory: h5py can crash writing into a full disk (bpnetz.files.h5)
        f["backgrounds/sequence"] = bg.codes
        f["backgrounds/source_region"] = bg.source
        f.create_dataset("backgrounds/source_chrom", data=np.array(bg.chrom, dtype=object), dtype=h5py.string_dtype())
        f["backgrounds/source_start"] = bg.in_start
        f["backgrounds/log_total"] = base
        for name, codes in named:
            f[f"motifs/{name}/sequence"] = decode(codes)
            f[f"motifs/{name}/logfc"] = singles[name][0]
            f[f"motifs/{name}/mean_counts"] = singles[name][1]
        if curve is not None:
            f["spacing/spacings"] = spacings
            for orientation, parts in curve.items():
                for key, values in parts.items():
                    f[f"spacing/{orientation}/{key}"] = values  # (spacings, tasks, backgrounds)
        f.attrs.update({"seed": bg.seed, "n_backgrounds": len(bg.codes), "model": str(session.model_file),
                        "rc_average": session.rc_average, "tasks": list(session.layout.tasks),
                        "controls": "bigWig" if session.controls is not None else "zero"})
    return path
