"""The reference genome FASTA (pyfaidx): opening with a checked index, lengths, and many windows at once.

A problem the user can fix (missing file, malformed FASTA) becomes an :class:`~bpnetz.errors.InputError`
naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bpnetz.errors import InputError
from bpnetz.genome.intervals import require_file
from bpnetz.genome.sequence import encode
from bpnetz.genome.windows import gather, windows_by_span


def open_fasta(path: str | Path) -> Any:
    """A pyfaidx.Fasta returning raw strings (indexes the file on first use)."""
    import pyfaidx

    path = require_file(path, "reference genome FASTA")
    try:
        return pyfaidx.Fasta(str(path), as_raw=True, sequence_always_upper=False, build_index=True)
    except (pyfaidx.FastaIndexingError, pyfaidx.FetchError, ValueError, OSError) as err:
        raise InputError(f"cannot be indexed as FASTA ({err}).", path=path,
                         fix="Check it is an uncompressed (or bgzip-compressed) FASTA; 'samtools faidx' "
                             "reports the offending line.") from None


def fasta_lengths(fasta: Any) -> dict[str, int]:
    """Chromosome lengths of an open FASTA, in file order."""
    return {name: int(record.rlen) for name, record in fasta.faidx.index.items()}


def fasta_windows(fasta: Any, chroms: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Base codes (uint8, shape (n, length)) of windows [start, start + length); windows must lie inside."""
    out = np.empty((len(starts), length), dtype=np.uint8)
    for chrom, span_start, span_end, rows in windows_by_span(chroms, starts, length):
        codes = encode(fasta[chrom][span_start:span_end])
        if len(codes) != span_end - span_start:
            raise InputError(f"{chrom}:{span_start}-{span_end} reads {len(codes)} bases, expected "
                             f"{span_end - span_start}.", path=fasta.filename,
                             fix="The FASTA index (.fai) may be stale: delete it and rerun.")
        out[rows] = gather(codes, starts[rows] - span_start, length)
    return out
