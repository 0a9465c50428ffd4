"""The options of :func:`bpnetz.predict.predict.predict`, defined once: ``bpnetz predict``, ``bpnet-predict`` and
the Python API build a :class:`PredictOptions`; the shared flags take their defaults from it.

Before this object the 21 keywords were written out in ``predict``'s signature and again in the CLI's
flag-to-keyword mapping, three of them under other names (``--generate-predicted-profile-bigWigs`` →
``generate_bigwigs``, ``--include-background`` → ``peaks_only``, ``--store-cache`` → ``cache_dir``); each flag's
``dest`` is now the field's name (``--include-background`` is the one flag that negates its field).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: the model's split subsets, or every chromosome of the store
SUBSETS = ("test", "val", "train", "all")


@dataclass(frozen=True)
class PredictOptions:
    """What to predict and how.

    Where the loci come from: ``store`` (a built store) or raw inputs (``input_data`` + ``reference_genome`` +
    ``chrom_sizes``: the store is found or built under ``cache_dir``) or, with neither, the model's training
    store. ``split`` picks the model's test/val/train chromosomes or ``all``; ``chroms`` overrides it;
    ``peaks_only`` False predicts background loci too; ``test_indices`` (a file of 0-based positions, or the
    positions) keeps only those among the selected loci. ``regions`` (BED) / ``tile`` (chromosome names) switch to
    regions mode (bigWigs only; needs ``reference_genome`` and ``chrom_sizes``).

    How: ``batch_size`` loci per batch; ``reverse_complement_average`` averages each prediction with that of the
    reverse complement; ``output_window_size`` evaluates and writes a centre crop of the output window (None: all);
    ``set_bias_as_zero`` zeroes the control inputs; ``generate_bigwigs`` writes one bigWig of predicted counts per
    track (needs ``chrom_sizes``); ``orig_multi_loss`` None reads it from the model's log-count outputs.
    ``expected_lengths`` (input, output), when given, must be the model's (``bpnet-predict``'s
    ``--input-seq-len`` / ``--output-len``).
    """

    store: str | Path | None = None
    input_data: str | Path | None = None
    reference_genome: str | Path | None = None
    chrom_sizes: str | Path | None = None
    cache_dir: str | Path | None = None
    split: str = "test"
    chroms: Sequence[str] | None = None
    peaks_only: bool = True
    test_indices: str | Path | Sequence[int] | None = None
    regions: str | Path | None = None
    tile: Sequence[str] | str | None = None
    batch_size: int = 64
    reverse_complement_average: bool = False
    output_window_size: int | None = None
    set_bias_as_zero: bool = False
    generate_bigwigs: bool = False
    orig_multi_loss: bool | None = None
    expected_lengths: tuple[int, int] | None = None
    progress: bool = True
