"""The build's unit of work: a *region*, i.e. the store chunks of one stretch of the genome, whatever their rows.

A store's rows are runs of loci, each sorted by position (one task's peaks, then its background loci, ...), so a
shard of 4,096 rows covers part of the genome for the peaks and a wider part for the sparser background loci, and
two shards of different runs cover the same stretch. A task per shard therefore read and inflated every bigWig data
block once per run: the 40k-locus benchmark (32k peaks, 8k background loci over 105 Mb, 4 count tracks) inflated
10,037 data blocks where its files hold 5,012. A region task instead takes the chunks (256 rows) whose middle
locus lies in its stretch, from every run, and reads each track's windows in one pass, so neighbouring peak and
background windows share spans and data blocks. Measured on that benchmark's loci, one process, the 4 tracks'
windows: 1.70-1.77 CPU-s by shard, 0.90-0.93 by 4 regions, 0.98 by 8 regions.

A region's chunks belong to several shards, and a shard file is written whole, so region tasks return their
chunks encoded (compressed, CRC-checked bytes: what the shard file will hold) and :class:`ShardAssembler`, in the
scheduling process, writes each shard once all its chunks are in, then its ``.blocks/<shard>.json`` marker. Only
compressed bytes travel between processes (~1 kB per locus); a resumed build plans regions over the chunks of the
unfinished shards only. Local worker processes hand those bytes over in a file (:func:`spill`) rather than through
the process pool's pipe: see its docstring.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bpnetz.build.loci import chromosome_codes
from bpnetz.files.atomic import write_text
from bpnetz.store.shards import ShardEncoder

#: loci per region task. Region size trades the shared reads (larger regions merge more windows into shared spans)
#: against memory (a region's rows are held decoded: ~7.4 kB per 2114/1000 locus with 4 uint8 tracks) and load
#: balance; see the module docstring for the measured region counts.
REGION_LOCI = 8192
#: folder of the partial store where local region tasks leave their encoded chunks (:func:`spill`)
SPILL_DIR = ".regions"


def chunk_lengths(chunks: np.ndarray, chunk_rows: int, n_rows: int) -> np.ndarray:
    """Rows of each chunk (the array's last chunk may be shorter)."""
    return np.minimum(chunk_rows, n_rows - np.asarray(chunks, dtype=np.int64) * chunk_rows)


def chunk_rows_of(chunks: np.ndarray, chunk_rows: int, n_rows: int) -> np.ndarray:
    """The store rows of ``chunks``, chunk after chunk."""
    lengths = chunk_lengths(chunks, chunk_rows, n_rows)
    firsts = np.asarray(chunks, dtype=np.int64) * chunk_rows
    return np.repeat(firsts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))


def plan_regions(chrom: np.ndarray, summit: np.ndarray, blocks: list[int], shard_rows: int, chunk_rows: int,
                 parallel: int) -> list[np.ndarray]:
    """The chunks of ``blocks`` (shards) grouped into regions: chunks ordered by the position of their middle locus
    (chromosomes in the order the rows first reach them), then cut into equal runs of chunks. The number of regions
    is a multiple of ``parallel`` (the worker count, so that every worker gets as many) holding at most
    :data:`REGION_LOCI` loci each where the chunks allow."""
    n_rows = len(summit)
    per_shard = shard_rows // chunk_rows
    chunks = (np.asarray(blocks, dtype=np.int64)[:, None] * per_shard + np.arange(per_shard)).ravel()
    chunks = chunks[chunks * chunk_rows < n_rows]
    if not len(chunks):
        return []
    lengths = chunk_lengths(chunks, chunk_rows, n_rows)
    middle = chunks * chunk_rows + lengths // 2
    order = np.lexsort((summit[middle], chromosome_codes(chrom[middle])[0]))
    loci = int(lengths.sum())
    parallel = max(1, parallel)
    n_regions = min(len(chunks), parallel * -(-loci // (parallel * REGION_LOCI)))
    return [np.sort(chunks[part]) for part in np.array_split(order, n_regions) if len(part)]


def spill(result: dict[str, Any], directory: Path) -> dict[str, Any]:
    """``result`` (a region task's) with its encoded chunks moved into the file ``directory/<region>.bin`` and
    replaced by their sizes (``"spilled"``); :meth:`ShardAssembler.add` reads them back and deletes the file (the
    builder removes the folder once the blocks are done, with any file a killed run left).

    Why: a forked worker returning its ~6.5 MB of chunks through the process pool's pipe waited 40-57 ms per
    region until the scheduling process, sharing the 2 cores with both workers, had read and unpickled them, so
    each worker idled ~10% of the 40k-locus benchmark's block phase; a write to the page cache takes a few ms and
    does not wait for the reader. (A cluster's workers return the bytes: they travel over the network anyway.)
    """
    encoded = result.pop("encoded")
    directory.mkdir(exist_ok=True)
    path = directory / f"{result['region']}.bin"
    with open(path, "wb") as handle:
        handle.write(b"".join(chunk for chunks in encoded.values() for chunk in chunks))
    sizes = {name: [len(chunk) for chunk in chunks] for name, chunks in encoded.items()}
    result["spilled"] = {"path": str(path), "sizes": sizes}
    return result


def _unspill(result: dict[str, Any]) -> None:
    """Put a :func:`spill`-ed result's chunks back (views of the file's bytes), and delete the file."""
    spilled = result.pop("spilled")
    path = Path(spilled["path"])
    data = memoryview(path.read_bytes())
    path.unlink()
    encoded, at = {}, 0
    for name, sizes in spilled["sizes"].items():
        encoded[name] = []
        for size in sizes:
            encoded[name].append(data[at:at + size])
            at += size
    result["encoded"] = encoded


class ShardAssembler:
    """Encoded chunks from region tasks, written as whole shards (:meth:`ShardEncoder.write_encoded`) once every
    chunk of a shard has arrived; each written shard then gets its ``.blocks/<shard>.json`` marker with its totals
    (per track: the sum of the chunks' totals, in chunk order, so a float total does not depend on the regions).

    ``arrays``: the data arrays of the partial store (zarr arrays of the build's layout); ``blocks``: the shards to
    expect; ``after_add()`` is called after each region, :attr:`on_block` ``(stats)`` after each shard's marker is
    written (the scheduler's progress bar sets it).

    The cost of the shared reads: a shard is written only once every region holding one of its chunks has finished
    (a background shard spans many regions), so an interrupted build keeps fewer finished shards than one task per
    shard did, and this process holds the encoded chunks of unfinished shards (~1 kB per locus; at most the store's
    compressed size).
    """

    def __init__(self, arrays: dict[str, Any], blocks: list[int], markers: Path,
                 after_add: Callable[[], None] = lambda: None):
        self.encoders = {name: shard_encoder(array) for name, array in arrays.items()}
        self.decoder = next(iter(self.encoders.values())).decoder  # every array has the same rows, chunks, shards
        self.shard_rows, self.chunk_rows, self.n_rows = (self.decoder.shard_rows, self.decoder.chunk_rows,
                                                         self.decoder.n_rows)
        self.markers = markers
        self.on_block: Callable[[dict[str, Any]], None] = lambda stats: None
        self.after_add = after_add
        self.expected = list(blocks)
        self._waiting = {block: {} for block in blocks}  # block -> chunk -> (encoded per array, stats)
        self.finished: list[dict[str, Any]] = []
        self.task_cpu_seconds = 0.0  # the CPU seconds the results report (worker processes': build_region_spilled)

    def add(self, result: dict[str, Any]) -> None:
        """Take one region task's result (its encoded chunks are removed from ``result``, so a scheduler keeping
        the result holds only its small remainder; a :func:`spill`-ed result's file is read and deleted) and write
        the shards it completes."""
        if "spilled" in result:
            _unspill(result)
        self.task_cpu_seconds += result.pop("cpu_seconds", 0.0)
        encoded, stats = result.pop("encoded"), result.pop("stats")
        per_shard = self.shard_rows // self.chunk_rows
        touched = set()
        for k, chunk in enumerate(result["chunks"]):
            block = chunk // per_shard
            self._waiting[block][chunk] = ({name: parts[k] for name, parts in encoded.items()},
                                           {name: {key: values[k] for key, values in s.items()}
                                            for name, s in stats.items()})
            touched.add(block)
        for block in sorted(touched):
            if len(self._waiting[block]) == self.decoder.chunks_in(block):
                self._write(block, self._waiting.pop(block))
        self.after_add()

    def check_complete(self) -> None:
        """Raise when a shard still lacks chunks (a region plan that missed some: a bug, never data)."""
        if self._waiting:
            raise RuntimeError(f"shards {sorted(self._waiting)} did not receive all their chunks")

    def _write(self, block: int, chunks: dict[int, tuple[dict[str, bytes], dict[str, Any]]]) -> None:
        ordered = [chunks[c] for c in sorted(chunks)]
        for name, encoder in self.encoders.items():
            encoder.write_encoded(block, [parts[name] for parts, _ in ordered])
        stats: dict[str, Any] = {"block": block, "rows": self.decoder.rows_in(block)}
        for name in ordered[0][1]:
            stats[name] = {key: np.sum([s[name][key] for _, s in ordered], axis=0).tolist()
                           for key in ordered[0][1][name]}
        write_text(self.markers / f"{block}.json", json.dumps(stats))
        self.finished.append(stats)
        self.on_block(stats)


def shard_encoder(array: Any) -> ShardEncoder:
    """The :class:`ShardEncoder` of a data array of a partial store."""
    encoder = ShardEncoder.for_array(array)
    if encoder is None:  # the builder creates every partial store locally, in this layout
        raise RuntimeError(f"{array.name}: not a local sharded array of the build's layout")
    return encoder
