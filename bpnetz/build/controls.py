"""Control (bias) inputs for arbitrary genome windows, read and smoothed exactly as the store builder stores them.

Prediction beyond the store's loci (``bpnetz predict --regions``/``--tile``) and contribution scores of a BED file
need the model's ``profile_bias`` and ``counts_bias`` inputs for windows the store does not hold. They come from
the control bigWigs named in the store layout, through the builder's own kernel (:func:`bias_block`, raw and
smoothed tracks), so a model sees the same values as in training. A missing control file or chromosome gives
zero inputs with a notice (the reference tool would crash).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bpnetz.build.builder import bias_block
from bpnetz.errors import notice
from bpnetz.genome.bigwig import open_bigwig
from bpnetz.store.schema import StoreLayout


@contextlib.contextmanager
def open_controls(layout: StoreLayout, chroms: Sequence[str]) -> Iterator[dict[str, Any] | None]:
    """The layout's control bigWigs, open; None (bias inputs zero, with a notice) when one is missing. A notice
    names the chromosomes of ``chroms`` that some control lacks (their bias inputs are zero)."""
    missing = sorted({t.source for t in layout.bias_tracks if not Path(t.source).is_file()})
    if missing:
        notice(f"control bigWig {missing[0]} is missing: the bias inputs of the regions are zero.")
        yield None
        return
    handles = {t.source: open_bigwig(t.source) for t in layout.bias_tracks}
    try:
        absent = sorted({c for c in chroms for h in handles.values() if c not in h.chroms()})
        if absent:
            notice(f"the controls lack {', '.join(absent[:5])}: bias inputs there are zero.")
        yield handles
    finally:
        for handle in handles.values():
            handle.close()


def region_bias(layout: StoreLayout, controls: Mapping[str, Any] | None, chrom: np.ndarray,
                out_start: np.ndarray) -> dict[str, np.ndarray]:
    """``profile_bias`` and ``counts_bias`` of output windows (``chrom``, ``out_start``; the layout's output
    length) from the open controls, read and smoothed as the store builder does (:func:`bias_block`); zeros
    without controls or on chromosomes a control lacks."""
    chrom = np.asarray(chrom)
    profile = np.zeros((len(chrom), layout.output_len, layout.n_bias), dtype=np.float32)
    if controls is not None:
        covered = set.intersection(*(set(h.chroms()) for h in controls.values()))
        inside = np.isin(chrom.astype(str), sorted(covered))
        if inside.any():
            profile[inside], _ = bias_block(controls, layout.bias_tracks, chrom[inside],
                                             np.asarray(out_start)[inside], layout.output_len)
    return {"profile_bias": profile, "counts_bias": np.log1p(profile.sum(axis=1, dtype=np.float64))}
