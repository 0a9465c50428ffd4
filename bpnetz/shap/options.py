"""The options of :func:`bpnetz.shap.contributions.contribution_scores`, defined once: ``bpnetz shap``,
``bpnet-shap`` and the Python API build a :class:`ShapOptions`; the flags take their defaults from it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: seed of the dinucleotide shuffles and of the locus sample
DEFAULT_SEED = 20210304


@dataclass(frozen=True)
class ShapOptions:
    """Which loci to score and how.

    Loci: the peaks of ``store`` (default: the model's training store), or the summit-centred windows of
    ``bed_file`` read from ``reference_genome`` (bias inputs from the control bigWigs of ``input_data``);
    ``chroms`` keeps those on these chromosomes, ``sample`` a seeded random sample of that many, ``presort``
    scores the strongest BED loci (narrowPeak column 7) first. ``task``: the task explained. ``num_shuffles``
    dinucleotide-shuffled references per sequence, ``batch_size`` sequences per DeepLIFT step.
    ``generate_bigwigs`` writes the projected scores as bigWigs (needs ``chrom_sizes``, or the FASTA's or store's
    chromosome lengths). ``expected_input_len``, when given, must be the model's input length.
    """

    store: str | Path | None = None
    bed_file: str | Path | None = None
    reference_genome: str | Path | None = None
    input_data: str | Path | None = None
    chrom_sizes: str | Path | None = None
    chroms: Sequence[str] | None = None
    task: int = 0
    sample: int | None = None
    seed: int = DEFAULT_SEED
    presort: bool = False
    num_shuffles: int = 20
    generate_bigwigs: bool = False
    batch_size: int = 8
    expected_input_len: int | None = None
    progress: bool = True
