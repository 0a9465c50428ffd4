"""The options of :func:`bpnetz.build.builder.build_store` and :func:`~bpnetz.build.builder.find_or_build_store`,
defined once: ``bpnetz build``, ``bpnet-train``, prediction from raw inputs and the Python API build a
:class:`BuildOptions`; the ``bpnetz build`` flags take their defaults from it.

Before this object ``build_store``, its private ``_build`` and ``find_or_build_store`` each repeated the same
eleven keywords.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BuildOptions:
    """How to build a store. ``input_len``/``output_len``: the model's input and output lengths; ``max_jitter``:
    the largest jitter the store keeps room for on each side. ``chroms``: keep only loci on these chromosomes;
    ``blacklist``: BED of regions whose overlapping loci are rejected. ``workers``: local worker processes
    (default: all cores); ``scheduler``: address of a dask.distributed scheduler instead. ``overwrite``: replace an
    existing store (``find_or_build_store`` never overwrites)."""

    input_len: int = 2114
    output_len: int = 1000
    max_jitter: int = 128
    chroms: Sequence[str] | None = None
    blacklist: str | Path | None = None
    workers: int | None = None
    scheduler: str | None = None
    progress: bool = True
    overwrite: bool = False

    def content_args(self) -> dict[str, Any]:
        """The options that shape a store's content (recorded in its configs and its build key)."""
        return {"input_len": self.input_len, "output_len": self.output_len, "max_jitter": self.max_jitter,
                "chroms": list(self.chroms) if self.chroms is not None else None,
                "blacklist": str(Path(self.blacklist).resolve()) if self.blacklist else None}
