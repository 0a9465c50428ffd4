"""Contribution scores of a trained model over a set of loci: read them, run DeepLIFT-SHAP, write the files.

Loci come either from a store (its peaks, read through the loader without jitter or flips, exactly as the model
saw them in training) or from a BED/narrowPeak file with the reference genome (the ``bpnet-shap`` way): summit-
centred input windows read from the FASTA and bias inputs from the control bigWigs, read and smoothed as the store
builder does. Both end in :func:`bpnetz.shap.scores.write_score_files`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bpnetz.errors import InputError
from bpnetz.files.atomic import output_directory, relocated
from bpnetz.genome.sequence import one_hot
from bpnetz.model.contract import ModelDir, ModelShape, check_lengths, counts_per_track
from bpnetz.shap.options import ShapOptions
from bpnetz.store.schema import KIND_PEAK, StoreLayout


@dataclass
class ScoredLoci:
    """The loci to score: coordinates of their input windows and the model inputs."""

    chrom: np.ndarray
    start: np.ndarray  # input-window start
    end: np.ndarray
    names: list[str]
    sequences: np.ndarray  # (N, input_len, 4) one-hot float32 (the loader yields uint8)
    bias: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class ShapSummary:
    output_dir: Path
    n_loci: int
    n_skipped: int
    seconds: float
    files: dict[str, Path]

    def format(self) -> str:
        skipped = f", {self.n_skipped} skipped (window past a chromosome end)" if self.n_skipped else ""
        return (f"scored {self.n_loci} loci{skipped} in {self.seconds:.1f} s "
                f"({self.n_loci / max(self.seconds, 1e-9):.2f} loci/s) -> {self.output_dir}")


def _sample(n: int, sample: int | None, seed: int) -> np.ndarray:
    """Indices of a seeded random sample (kept in input order), or all."""
    if sample is None or sample >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))


def store_loci(store: str | Path, layout_check: StoreLayout | None, *, task: int, chroms: list[str] | None,
               sample: int | None, seed: int, batch_size: int = 256) -> ScoredLoci:
    """The peaks of ``task`` on ``chroms`` (all when None) of a store, as the model inputs of prediction."""
    from bpnetz.model.data import iterate_here
    from bpnetz.store.reader import StoreReader
    from bpnetz.store.selection import LocusSelection
    from bpnetz.store.stream import LocusStream

    reader = StoreReader(store)
    if layout_check is not None:
        check_lengths(reader.layout, layout_check.input_len, layout_check.output_len, who="the model", where=store)
    chroms = chroms or reader.chromosomes
    loci = reader.loci
    rows_all = LocusSelection(reader, chroms, backgrounds="none", redraw=False, seed=0).rows
    keep_rows = rows_all[(loci["task"].to_numpy()[rows_all] == task) & (loci["kind"].to_numpy()[rows_all] == KIND_PEAK)]
    keep_rows = keep_rows[_sample(len(keep_rows), sample, seed)]
    if not len(keep_rows):
        raise InputError(f"the store has no peaks of task {task} on {', '.join(chroms)}.",
                         path=store, fix="Check --task-id and --chroms.")
    stream = LocusStream(reader, None, "all", batch_size=batch_size, all_chroms=chroms, backgrounds="none",
                         jitter=False, shuffle=False, only=np.searchsorted(rows_all, keep_rows))  # reads only these
    parts: dict[str, list[np.ndarray]] = {}
    for inputs, _, _ in iterate_here(stream):
        for name, values in inputs.items():
            parts.setdefault(name, []).append(values)
    arrays = {name: np.concatenate(values) for name, values in parts.items()}
    table = loci.iloc[keep_rows]
    start = table["summit"].to_numpy() - reader.layout.input_len // 2
    return ScoredLoci(chrom=table["chrom"].to_numpy().astype(str), start=start,
                      end=start + reader.layout.input_len, names=[str(n) for n in table["name"]],
                      sequences=arrays.pop("sequence").astype(np.float32), bias=arrays)


def bed_loci(bed_file: str | Path, reference_genome: str | Path, layout: StoreLayout, *, task: int,
             chroms: list[str] | None, sample: int | None, seed: int, presort: bool) -> tuple[ScoredLoci, int]:
    """Summit-centred windows of a BED/narrowPeak file read from the FASTA (and controls); and how many loci were
    skipped because their window crosses a chromosome end."""
    from bpnetz.build.controls import open_controls, region_bias
    from bpnetz.genome.fasta import fasta_lengths, fasta_windows, open_fasta
    from bpnetz.genome.intervals import read_narrowpeak

    peaks = read_narrowpeak([bed_file])
    keep = np.ones(len(peaks), dtype=bool) if not chroms else np.isin(peaks.chrom.astype(str), chroms)
    with open_fasta(reference_genome) as genome:
        lengths = fasta_lengths(genome)
    size = np.array([lengths.get(str(c), -1) for c in peaks.chrom], dtype=np.int64)
    in_start = peaks.summit - layout.input_len // 2
    inside = (in_start >= 0) & (in_start + layout.input_len <= size)
    skipped = int(np.sum(keep & ~inside))
    order = np.flatnonzero(keep & inside)
    if presort:  # strongest first, by narrowPeak column 7 (signalValue)
        signal = np.array([float(peaks.fields[i][6]) if len(peaks.fields[i]) > 6 else 0.0 for i in order])
        order = order[np.argsort(-signal, kind="stable")]
    order = order[_sample(len(order), sample, seed)]
    if not len(order):
        raise InputError("no locus of the file lies on the requested chromosomes with its whole input window "
                         "inside the chromosome.", path=bed_file, fix="Check --chroms and the chromosome names.")
    chrom = peaks.chrom[order].astype(object)
    summit = peaks.summit[order]
    start = summit - layout.input_len // 2
    with open_fasta(reference_genome) as genome:
        sequences = one_hot(fasta_windows(genome, chrom, start, layout.input_len))
    bias: dict[str, np.ndarray] = {}
    if layout.n_bias:
        with open_controls(layout, sorted(set(chrom))) as controls:
            bias = region_bias(layout, controls, chrom, summit - layout.output_len // 2)
    names = [peaks.fields[i][3] if len(peaks.fields[i]) > 3 else "." for i in order]
    return ScoredLoci(chrom=chrom.astype(str), start=start, end=start + layout.input_len,
                      names=names, sequences=sequences, bias=bias), skipped


def control_layout(model_layout: StoreLayout, input_data: str | Path | None) -> StoreLayout:
    """The model's layout, with its control tracks taken from ``input_data.json`` when given (so moved files and
    the user's current paths are honoured); the track structure must match the model's."""
    if input_data is None:
        return model_layout
    from bpnetz.build.builder import make_layout
    from bpnetz.config import InputData

    fresh = make_layout(InputData.load(input_data), model_layout.input_len, model_layout.output_len, 0)
    if [(t.task, t.strand, t.smoothing) for t in fresh.bias_tracks] != [
            (t.task, t.strand, t.smoothing) for t in model_layout.bias_tracks]:
        raise InputError(f"its bias tracks ({len(fresh.bias_tracks)}) differ from those the model was trained "
                         f"with ({len(model_layout.bias_tracks)}).", path=input_data,
                         fix="Use the input_data.json the model was trained with.")
    return fresh


def _bigwig_sizes(chrom_sizes: str | Path | None, reference_genome: str | Path | None,
                  store: str | Path | None) -> dict[str, int]:
    """Chromosome sizes for the score bigWigs: the file given, else the FASTA's (as the reference's command line
    in its README passes none), else the store's genome record."""
    if chrom_sizes is None and reference_genome is not None:
        from bpnetz.genome.fasta import fasta_lengths, open_fasta

        with open_fasta(reference_genome) as genome:
            return dict(fasta_lengths(genome))
    from bpnetz.genome.intervals import chromosome_sizes
    from bpnetz.store.reader import StoreReader

    genome_record = StoreReader(store).meta.get("genome") if store is not None else None
    return chromosome_sizes(chrom_sizes, genome_record, "score bigWigs")


def contribution_scores(model_dir: str | Path, output_dir: str | Path,
                        options: ShapOptions | None = None) -> ShapSummary:
    """DeepLIFT-SHAP counts and profile scores of a model directory's model over peaks of a store or a BED file
    (:class:`~bpnetz.shap.options.ShapOptions`; None: its defaults).

    Writes ``counts_scores.h5``, ``profile_scores.h5`` (tfmodisco-lite's input), ``peaks_valid_scores.bed`` and,
    with ``generate_bigwigs``, ``counts_scores.bw`` / ``profile_scores.bw`` (needs ``chrom_sizes``).
    """
    started = time.perf_counter()
    with output_directory(output_dir, what="SHAP output directory") as tmp:
        n_loci, skipped, files = _scores_into(tmp, model_dir, options or ShapOptions())
    files = {key: relocated(path, tmp, output_dir) for key, path in files.items()}
    return ShapSummary(Path(output_dir), n_loci, skipped, time.perf_counter() - started, files)


def _scores_into(out: Path, model_dir: str | Path, o: ShapOptions) -> tuple[int, int, dict[str, Path]]:
    """:func:`contribution_scores` writing into ``out``; returns the loci scored, the loci skipped, the files."""
    from bpnetz.model.registry import load_model
    from bpnetz.shap.deeplift import DeepLiftExplainer
    from bpnetz.shap.scores import write_score_files

    model_dir = ModelDir.open(model_dir)
    model = load_model(model_dir.model_file, compile=False)
    layout = model_dir.recorded_layout()
    if layout is None:
        raise InputError("store.json (the record of the training store) is missing.", path=model_dir.path,
                         fix="Use a model directory written by 'bpnetz train'.")
    if o.expected_input_len is not None and o.expected_input_len != layout.input_len:
        raise InputError(f"--input-seq-len {o.expected_input_len} does not match the model's input length "
                         f"{layout.input_len}.", path=model_dir.model_file, fix=f"Pass {layout.input_len}.")
    skipped, store = 0, o.store
    if o.bed_file is not None:
        if o.reference_genome is None:
            raise InputError("--bed-file needs --reference-genome to read the sequences.")
        loci, skipped = bed_loci(o.bed_file, o.reference_genome, control_layout(layout, o.input_data),
                                 task=o.task, chroms=o.chroms, sample=o.sample, seed=o.seed, presort=o.presort)
    else:
        store = store or model_dir.recorded_store()
        if store is None:
            raise InputError("no loci to score: pass --store or --bed-file with --reference-genome.")
        loci = store_loci(store, layout, task=o.task, chroms=o.chroms, sample=o.sample, seed=o.seed)
    orig_multi_loss = counts_per_track(ModelShape.of(model).n_logcounts, layout, model_dir.model_file)
    try:
        explainer = DeepLiftExplainer(model, task=o.task, store_layout=layout, orig_multi_loss=orig_multi_loss)
        scores = explainer.explain(loci.sequences, loci.bias or None, num_shuffles=o.num_shuffles, seed=o.seed,
                                   batch_size=o.batch_size, progress=o.progress)
    except ValueError as err:
        raise InputError(f"cannot explain this model: {err}", path=model_dir.model_file) from None
    sizes = _bigwig_sizes(o.chrom_sizes, o.reference_genome, store) if o.generate_bigwigs else None
    files = write_score_files(out, loci.chrom, loci.start, loci.end, loci.sequences, scores,
                              names=loci.names, chrom_sizes=sizes)
    return len(loci.chrom), skipped, files
