"""Batches of one subset of a store, regenerated each epoch: backgrounds, order, jitter, reverse complement.

Rows come from a :class:`~bpnetz.store.reader.StoreReader`, in one of two modes:

* **cached** (the store's selected rows fit in RAM): the rows a subset can ever use are read once, block by
  block (a block is a shard, or a chunk in an unsharded store), into numpy arrays; every batch is then a fast
  in-memory gather;
* **streamed**: each epoch reads the blocks holding the epoch's rows, in a random block order, a group of blocks
  ahead on reader threads (decoded in place into two reused group buffers, see :mod:`bpnetz.store.shards`),
  and mixes the rows of a group in a shuffle buffer. While an epoch's last group is consumed, the next epoch's
  first group is decoded, so the next epoch does not start by waiting for it (a short epoch paid that wait
  every time: 616–1,013 ms to the first batch before, 288–419 ms after, with small first elements; 5,076-locus
  store, 2 cores at load 14).

Both modes yield the same examples: the jitter and flip of a locus are drawn per (seed, epoch, locus), not per
batch position. No per-example Python: the producer crops whole batches of raw rows to their jittered windows
with one strided numpy gather per array, reading flipped rows from a reversed view (so the reverse complement
costs nothing extra), and one-hot encodes with one table lookup of 4-byte rows (complement included). Several
batches travel as one element (the per-element cost of tf.data's ``from_generator`` is ~0.6 ms); the tf.data
adapter turning elements into model inputs and targets is :mod:`bpnetz.model.data` (this package imports no
TensorFlow).

An error met while producing an epoch (a damaged shard read on a reader thread re-raises in the generator) is
raised from :meth:`LocusStream.next_epoch` and kept in :attr:`LocusStream.failure`, so a consumer that sees it
only through another framework's wrapper (tf.data turns it into an ``UnknownError``) can raise the original.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bpnetz.config import Split
from bpnetz.errors import InputError
from bpnetz.genome import sequence
from bpnetz.memory import available_memory
from bpnetz.store import schema
from bpnetz.store.reader import RawRows, StoreReader, aligned_empty
from bpnetz.store.selection import (
    BACKGROUND_MODES,
    STREAM_AUGMENT,
    STREAM_ORDER,
    STREAM_SHARD,
    LocusSelection,
    Subset,
    subset_chroms,
)

RC_MODES = ("none", "random", "double")
#: loci per element (several batches travel together: the per-element cost of from_generator is ~0.6 ms)
ELEMENT_LOCI = 1024
#: fraction of the available memory a RAM cache may take when ``cache="auto"``.
CACHE_MEMORY_FRACTION = 0.4


def crop_rows(x: np.ndarray, index: np.ndarray, offset: np.ndarray, length: int, flip: np.ndarray | None = None,
              flipped_tracks: np.ndarray | None = None) -> np.ndarray:
    """``x[index[i], offset[i] : offset[i] + length]`` for every i, as one aligned (B, length, …) array.

    Rows where ``flip`` is true come out reversed along positions, with their tracks (the trailing axis) in the
    order ``flipped_tracks`` (default: the stored order). The jitter crop is a gather from a sliding-window view
    of the rows; a flipped row is the same gather from the reversed view of the flattened rows, which reverses
    positions and tracks at once (for [+, -] pairs that is already the strand swap).
    """
    from numpy.lib.stride_tricks import sliding_window_view

    index, offset = np.asarray(index), np.asarray(offset)
    width = int(np.prod(x.shape[2:], dtype=np.int64))
    flat = np.ascontiguousarray(x).reshape(len(x), -1)  # (rows, positions·tracks), a view
    out = aligned_empty((len(index), length, *x.shape[2:]), x.dtype)
    rows = out.reshape(len(index), -1)
    windows = sliding_window_view(flat, length * width, axis=1)
    if flip is None or not np.any(flip):
        rows[...] = windows[index, offset * width]
        return out
    flip = np.asarray(flip, dtype=bool)
    forward, backward = ~flip, flip
    rows[forward] = windows[index[forward], offset[forward] * width]
    reversed_flat = flat[:, ::-1]  # a view: positions and tracks reversed
    start = (x.shape[1] - length - offset[backward]) * width
    rows[backward] = sliding_window_view(reversed_flat, length * width, axis=1)[index[backward], start]
    if x.ndim == 3:
        order = (x.shape[2] - 1 - np.asarray(flipped_tracks)) if flipped_tracks is not None \
            else np.arange(x.shape[2])[::-1]
        if not np.array_equal(order, np.arange(x.shape[2])):
            out[backward] = out[backward][:, :, order]
    return out


class LocusStream:
    """Batches of one subset of a store, regenerated (new backgrounds, order, jitter, flips) at every epoch.

    :func:`bpnetz.model.data.stream_dataset` is its tf.data pipeline; each new iteration over it is the next epoch
    (:meth:`next_epoch`: epoch 0, 1, …), or, continuous, one iteration runs all epochs (:meth:`epochs`), so Keras
    ``fit`` sees fresh backgrounds and augmentation each epoch, and the whole sequence is fixed by ``seed``.
    ``only`` keeps the loci at those indices of the unrestricted selection's loci in store order and never reads
    the others (:meth:`~bpnetz.store.selection.LocusSelection.restrict`; prediction's ``--test-indices``).
    """

    def __init__(self, store: str | Path | StoreReader, split: Split | None, subset: Subset, *, batch_size: int,
                 all_chroms: Sequence[str] | None = None, jitter: bool | None = None,
                 reverse_complement: str = "none", backgrounds: str | None = None, shuffle: bool | None = None,
                 seed: int = 0, mnll_loss_sample_weight: float = 1.0, mnll_background_weight: float = 0.0,
                 counts_background_weight: float = 1.0,
                 orig_multi_loss: bool = False, cache: bool | str = "auto", shuffle_loci: int = 16384,
                 read_ahead: int = 2, batches_per_element: int | None = None,
                 progress: bool = False, shard: tuple[int, int] | None = None, only: np.ndarray | None = None):
        if reverse_complement not in RC_MODES:
            raise ValueError(f"reverse_complement must be one of {RC_MODES}, got {reverse_complement!r}")
        backgrounds = backgrounds or ("draw" if subset in ("train", "val") else "none")
        if backgrounds not in BACKGROUND_MODES:
            raise ValueError(f"backgrounds must be one of {BACKGROUND_MODES}, got {backgrounds!r}")
        if batch_size < 1:
            raise InputError(f"the batch size must be at least 1, got {batch_size}.")
        self.reader = store if isinstance(store, StoreReader) else StoreReader(store)
        self.layout = self.reader.layout
        self.subset = subset
        self.batch_size = int(batch_size)
        self.jitter = subset == "train" if jitter is None else bool(jitter)
        self.reverse_complement = reverse_complement
        self.shuffle = subset == "train" if shuffle is None else bool(shuffle)
        self.seed = int(seed)
        self.orig_multi_loss = orig_multi_loss
        self.shuffle_loci = max(1, shuffle_loci)
        self.read_ahead = max(1, read_ahead)
        self.batches_per_element = max(1, batches_per_element or ELEMENT_LOCI // self.batch_size)
        chroms = subset_chroms(self.reader, split, subset, all_chroms)
        self.selection = LocusSelection(self.reader, chroms, backgrounds=backgrounds, redraw=subset == "train",
                                        seed=self.seed)
        if only is not None:
            self.selection.restrict(only)
        if shard is not None and not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
            raise ValueError(f"shard must be (index, count) with 0 <= index < count, got {shard!r}")
        #: (worker index, workers): this stream yields only its worker's share of each epoch (see shard_positions)
        self.shard = None if shard is None or shard[1] == 1 else (int(shard[0]), int(shard[1]))
        kinds = self.reader.loci["kind"].to_numpy()[self.selection.rows]
        self._weights = np.where(kinds == schema.KIND_PEAK, mnll_loss_sample_weight,
                                 mnll_background_weight).astype(np.float32)
        self._counts_weights = np.where(kinds == schema.KIND_PEAK, 1.0, counts_background_weight).astype(np.float32)
        self.cached = self._decide_cache(cache)
        self._cache = self.reader.read_rows(self.selection.rows, progress=progress) if self.cached else None
        self._epoch = 0
        #: the InputError that ended an epoch, if one did (see :meth:`next_epoch`)
        self.failure: InputError | None = None
        self._free_buffers: list[RawRows] = []  # group buffers no epoch is using
        self._buffers_lock = threading.Lock()
        self._prefetched: EpochPlan | None = None  # the next epoch's plan, its first group decoding ahead
        self._track_swap = self.layout.strand_swap(self.layout.tracks)
        self._bias_swap = self.layout.strand_swap(self.layout.bias_tracks)

    def _decide_cache(self, cache: bool | str) -> bool:
        if cache == "auto":
            return len(self.selection.rows) * self.reader.bytes_per_locus <= CACHE_MEMORY_FRACTION * available_memory()
        if isinstance(cache, bool):
            return cache
        raise ValueError(f"cache must be 'auto', True or False, got {cache!r}")

    # ----------------------------------------------------------------------------------------------- sizes

    @property
    def n_loci(self) -> int:
        """Distinct loci per epoch (this worker's share of them when sharded)."""
        if self.shard is None:
            return self.selection.n_examples
        index, count = self.shard
        return (index + 1) * self.selection.n_examples // count - index * self.selection.n_examples // count

    def shard_positions(self, positions: np.ndarray, epoch: int) -> np.ndarray:
        """This worker's share of an epoch's positions: the epoch's blocks in an order drawn per (seed, epoch),
        the same on every worker, cut into ``count`` contiguous runs of (as nearly as possible) equal length.
        The shares are disjoint and together hold every position once; each worker reads its own blocks but for
        the at most ``count - 1`` blocks cut between two neighbouring shares."""
        if self.shard is None:
            return positions
        index, count = self.shard
        blocks = self.selection.rows[positions] // self.reader.block_loci
        distinct = np.unique(blocks)
        rank = np.empty(int(distinct[-1]) + 1, np.int64)
        rank[distinct] = np.random.default_rng([self.seed, epoch, STREAM_SHARD]).permutation(len(distinct))
        in_block_order = positions[np.argsort(rank[blocks], kind="stable")]
        return np.sort(in_block_order[index * len(positions) // count:(index + 1) * len(positions) // count])

    @property
    def n_examples(self) -> int:
        """Examples per epoch (twice the loci with doubled reverse-complement batches)."""
        return self.n_loci * (2 if self.reverse_complement == "double" else 1)

    @property
    def n_batches(self) -> int:
        return math.ceil(self.n_loci / self.batch_size) * (2 if self.reverse_complement == "double" else 1)

    def loci(self) -> pd.DataFrame:
        """The locus table (with its store ``row``) in yield order; only for unshuffled subsets.

        With ``reverse_complement="double"`` every batch of these loci is followed by the same loci flipped.
        """
        if self.shuffle:
            raise ValueError("a shuffled stream has no fixed locus order; use with_index=True to get each row")
        rows = self.selection.rows[self.selection.epoch_positions(0)]
        return self.reader.loci.iloc[rows].reset_index(drop=True).assign(row=rows)

    # --------------------------------------------------------------------------------------------- elements

    def elements(self, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        """The epoch's batches, several per element along a leading axis: ``sequence`` one-hot uint8
        (k, b, input_len, 4), ``signal`` and ``bias`` (k, b, output_len, ·) as stored and oriented, and ``row``,
        ``jitter``, ``flip``, ``weight`` (profile loss) and ``counts_weight`` (counts loss) (k, b). Full batches
        travel ``batches_per_element`` at a time, but the first elements of an epoch carry 1, 2, 4, … batches (see
        :func:`element_batches`); a batch that spans two groups of blocks, and the last, partial batch, travel
        alone."""
        augmentation = self._augmentation(epoch)
        if self.cached:
            positions = self.shard_positions(self.selection.epoch_positions(epoch), epoch)
            segments = self._cached_segments(positions, np.random.default_rng([self.seed, epoch, STREAM_ORDER]))
        else:
            segments = self._streamed_segments(self._claim_plan(epoch))
        size, sent = self.batch_size, 0  # sent: full-batch elements yielded so far
        carry: list[Part] = []  # the pending batch's rows, copied out of their (reused) buffers
        for part in segments:
            begin = 0
            if carry:
                begin = min(size - sum(len(p) for p in carry), len(part))
                carry.append(part.slice(0, begin))
                if sum(len(p) for p in carry) < size:
                    carry[-1] = carry[-1].owned()
                    continue
                yield self._element(carry, augmentation)
                carry = []
            full = begin + (len(part) - begin) // size * size
            while begin < full:
                stop = min(begin + element_batches(sent, self.batches_per_element) * size, full)
                yield self._element([part.slice(begin, stop)], augmentation)
                begin, sent = stop, sent + 1
            if full < len(part):
                carry = [part.slice(full, len(part)).owned()]
        if carry:
            yield self._element(carry, augmentation)

    def _augmentation(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Jitter (int32) and flip (bool) of every selectable locus in an epoch, indexed by position."""
        n = len(self.selection.rows)
        rng = np.random.default_rng([self.seed, epoch, STREAM_AUGMENT])
        max_jitter = self.layout.max_jitter
        jitter = (rng.integers(-max_jitter, max_jitter + 1, size=n, dtype=np.int32) if self.jitter
                  else np.zeros(n, np.int32))
        flip = rng.random(n) < 0.5 if self.reverse_complement == "random" else np.zeros(n, bool)
        return jitter, flip

    def _element(self, parts: list[Part], augmentation: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
        """Crop, orient and one-hot encode the rows of ``parts`` into one element (see :meth:`elements`)."""
        jitter, flip = augmentation
        pos = np.concatenate([p.pos for p in parts])
        n = len(pos)
        shape = (n // self.batch_size, self.batch_size) if n % self.batch_size == 0 else (1, n)
        if self.reverse_complement != "double":
            return _stacked(self._crop(parts, pos, jitter, flip[pos]), shape)
        # the reference's doubled batches: every batch, then the same batch reverse-complemented
        forward = _stacked(self._crop(parts, pos, jitter, np.zeros(n, bool)), shape)
        flipped = _stacked(self._crop(parts, pos, jitter, np.ones(n, bool)), shape)
        return {name: np.stack([x, flipped[name]], axis=1).reshape(2 * shape[0], *x.shape[1:])
                for name, x in forward.items()}

    def _crop(self, parts: list[Part], pos: np.ndarray, jitter: np.ndarray,
              flip: np.ndarray) -> dict[str, np.ndarray]:
        """Flat (n, …) arrays of an element (``pos``: the parts' positions, ``flip`` per row): windows at each
        locus' jitter, flipped rows reverse-complemented."""
        lay = self.layout
        pieces: dict[str, list[np.ndarray]] = {}
        at = 0
        for part in parts:
            f = flip[at:at + len(part)]
            at += len(part)
            offset = lay.max_jitter + jitter[part.pos]
            cropped = {"seq": crop_rows(part.raw.seq, part.index, offset, lay.input_len, f),
                       "signal": crop_rows(part.raw.signal, part.index, offset, lay.output_len, f, self._track_swap)}
            if part.raw.bias is not None:
                cropped["bias"] = crop_rows(part.raw.bias, part.index, offset, lay.output_len, f, self._bias_swap)
            for name, x in cropped.items():
                pieces.setdefault(name, []).append(x)
        out = {name: xs[0] if len(xs) == 1 else np.concatenate(xs) for name, xs in pieces.items()}
        out["sequence"] = one_hot_oriented(out.pop("seq"), flip)
        out.update(row=self.selection.rows[pos].astype(np.int64), jitter=jitter[pos], flip=flip,
                   weight=self._weights[pos], counts_weight=self._counts_weights[pos])
        return out

    def _cached_segments(self, positions: np.ndarray, rng: np.random.Generator) -> Iterator[Part]:
        """The whole epoch as one segment of the RAM cache (rows of the cache are positions)."""
        assert self._cache is not None
        order = rng.permutation(positions) if self.shuffle else positions
        yield Part(self._cache, order, order)

    def _plan(self, epoch: int) -> EpochPlan:
        """The epoch's blocks (random order when shuffling) in groups of at least ``shuffle_loci`` loci."""
        positions = self.shard_positions(self.selection.epoch_positions(epoch), epoch)
        rng = np.random.default_rng([self.seed, epoch, STREAM_ORDER])
        rows = self.selection.rows[positions]
        size = self.reader.block_loci
        blocks, starts = np.unique(rows // size, return_index=True)
        spans = list(zip(blocks.tolist(), starts.tolist(), [*starts[1:].tolist(), len(rows)]))
        if self.shuffle:
            spans = [spans[i] for i in rng.permutation(len(spans))]
        per_group = max(1, -(-self.shuffle_loci // size)) if self.shuffle else 1
        groups = [spans[i:i + per_group] for i in range(0, len(spans), per_group)]
        executor = ThreadPoolExecutor(max_workers=self.read_ahead, thread_name_prefix="bpnetz-read")
        return EpochPlan(epoch, positions, rows, groups, rng, executor, min(per_group, len(spans)) * size)

    def _streamed_segments(self, plan: EpochPlan) -> Iterator[Part]:
        """The epoch's block groups, one segment each (a shuffle buffer of at least ``shuffle_loci`` loci).

        While a group is consumed, the next one is decoded on reader threads into the other of two group buffers
        (taken from the stream's free buffers, never shared by two live epochs); while the last one is consumed,
        the next epoch's first group is decoded (:meth:`_prefetch`), so a short epoch does not start by waiting
        for a whole group's decoding (measured below ``element_batches``)."""
        size, rows, positions = self.reader.block_loci, plan.rows, plan.positions
        buffers: list[RawRows | None] = [plan.first.buffer if plan.first else None, None]
        started = [plan.first] if plan.first else []
        try:
            for g, group in enumerate(plan.groups):
                if g == 0 and not started:
                    buffers[0] = self._take_buffer(plan.buffer_rows)
                    started.append(self._read_group(plan.executor, group, buffers[0]))
                started[g].wait()
                if g + 1 < len(plan.groups):
                    buffers[(g + 1) % 2] = buffers[(g + 1) % 2] or self._take_buffer(plan.buffer_rows)
                    started.append(self._read_group(plan.executor, plan.groups[g + 1], buffers[(g + 1) % 2]))
                else:  # the last group: its spare buffer decodes the next epoch's first group
                    self._give_back(buffers[(g + 1) % 2])
                    buffers[(g + 1) % 2] = None
                    self._prefetch(plan.epoch + 1)
                index = np.concatenate([k * size + rows[s:e] - b * size for k, (b, s, e) in enumerate(group)])
                pos = np.concatenate([positions[s:e] for _, s, e in group])
                if self.shuffle:
                    mix = plan.rng.permutation(len(pos))
                    index, pos = index[mix], pos[mix]
                yield Part(buffers[g % 2], index, pos)
        finally:
            for read in started:
                read.stop()
            plan.executor.shutdown(wait=False)
            for buffer in buffers:
                self._give_back(buffer)

    def _prefetch(self, epoch: int) -> None:
        """Start decoding the first block group of ``epoch``, for :meth:`_claim_plan` (replacing any earlier)."""
        plan = self._plan(epoch)
        if plan.groups:
            plan.first = self._read_group(plan.executor, plan.groups[0], self._take_buffer(plan.buffer_rows))
        with self._buffers_lock:
            earlier, self._prefetched = self._prefetched, plan
        if earlier is not None:
            self._discard(earlier)

    def _claim_plan(self, epoch: int) -> EpochPlan:
        """The prefetched plan of ``epoch`` (its first group decoding or decoded), else a new one. A prefetched
        plan of another epoch (the stream's epoch was set to resume elsewhere) is dropped."""
        with self._buffers_lock:
            plan, self._prefetched = self._prefetched, None
        if plan is not None and plan.epoch == epoch:
            return plan
        if plan is not None:
            self._discard(plan)
        return self._plan(epoch)

    def _discard(self, plan: EpochPlan) -> None:
        """Stop a plan that will not be read: its reads cancelled or waited for, its buffer free again."""
        if plan.first is not None:
            plan.first.stop()
            self._give_back(plan.first.buffer)
        plan.executor.shutdown(wait=False)

    def _take_buffer(self, rows: int) -> RawRows:
        """A group buffer of at least ``rows`` raw rows: a free one of this stream, else a new one. Epochs may
        overlap (an abandoned iterator's generator lives until it is collected), and a prefetched first group
        holds its buffer until its epoch runs."""
        with self._buffers_lock:
            for i, buffer in enumerate(self._free_buffers):
                if len(buffer.seq) >= rows:
                    return self._free_buffers.pop(i)
        return self.reader.empty_rows(rows)

    def _give_back(self, buffer: RawRows | None) -> None:
        if buffer is not None:
            with self._buffers_lock:
                self._free_buffers.append(buffer)

    def _read_group(self, executor: ThreadPoolExecutor, group: list[tuple[int, int, int]],
                    buffer: RawRows) -> GroupRead:
        size = self.reader.block_loci
        self.reader.prefetch([b for b, _, _ in group])
        return GroupRead(buffer, [executor.submit(self.reader.read_block_into, b, buffer, k * size)
                                  for k, (b, _, _) in enumerate(group)])

    # ----------------------------------------------------------------------------------------------- epochs

    @property
    def epoch(self) -> int:
        """The epoch the next call of :meth:`next_epoch` produces; set it to resume a stream's sequence."""
        return self._epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._epoch = int(value)

    def next_epoch(self) -> Iterator[dict[str, np.ndarray]]:
        """The elements of the next epoch (0, 1, … at each call). An InputError met on the way (a damaged shard,
        re-raised from a reader thread) is kept in :attr:`failure` and raised."""
        epoch, self._epoch = self._epoch, self._epoch + 1
        yield from self._keeping_failure(self.elements(epoch))

    def epochs(self) -> Iterator[dict[str, np.ndarray]]:
        """The elements of epoch :attr:`epoch`, then of the epochs after it, without end: one generator for a
        whole training run, its epochs told apart by counting :attr:`n_batches` batches (Keras ``fit`` with
        ``steps_per_epoch``). Leaves :attr:`epoch` as it is (the trainer pins it per epoch for its checkpoints).

        Why: each new tf.data iteration over an epoch costs the pipeline's start, its first batch and the old
        iterator's teardown, 40-360 ms per epoch (5,076-locus store, 2114/1000, 2 cores: 16 + 25 ms plus 1-317 ms
        of teardown against ~250 ms of batches), which a small store pays every epoch. One iterator over all
        epochs streamed 20,700 loci/s where per-epoch iterators gave 13,100 (RAM-cached 21,800 against 17,400).
        InputErrors are kept in :attr:`failure` as by :meth:`next_epoch`."""
        yield from self._keeping_failure(element for epoch in itertools.count(self._epoch)
                                         for element in self.elements(epoch))

    def _keeping_failure(self, elements: Iterator[dict[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
        """``elements``, an InputError met on the way kept in :attr:`failure` and raised."""
        try:
            yield from elements
        except InputError as err:
            self.failure = err
            raise


@dataclass
class GroupRead:
    """A block group being decoded into ``buffer`` on reader threads (one future per block)."""

    buffer: RawRows
    futures: list[Future[None]]

    def wait(self) -> None:
        """Until every block is decoded; a reader thread's error is raised here."""
        for future in self.futures:
            future.result()

    def stop(self) -> None:
        """Cancel the reads not started and wait for the running ones: then nothing writes into the buffer."""
        for future in self.futures:
            future.cancel()
        futures_wait(self.futures)


@dataclass
class EpochPlan:
    """An epoch's reading plan: its selection ``positions`` and their store ``rows``, the groups of (block,
    start, end) spans into them in reading order, the order generator (it goes on to shuffle each group), the
    reader threads, the rows of a group buffer, and the first group's read once started ahead."""

    epoch: int
    positions: np.ndarray
    rows: np.ndarray
    groups: list[list[tuple[int, int, int]]]
    rng: np.random.Generator
    executor: ThreadPoolExecutor
    buffer_rows: int
    first: GroupRead | None = None


@dataclass
class Part:
    """Rows of a raw buffer in yield order: ``index`` into ``raw``, ``pos`` the selection positions."""

    raw: RawRows
    index: np.ndarray
    pos: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def slice(self, start: int, stop: int) -> Part:
        return Part(self.raw, self.index[start:stop], self.pos[start:stop])

    def owned(self) -> Part:
        """The same rows copied out of the buffer (which the stream reuses for a later group)."""
        return Part(self.raw.take(self.index), np.arange(len(self.index)), self.pos)


def element_batches(sent: int, most: int) -> int:
    """Batches in an epoch's next full element after ``sent`` of them: 1, 2, 4, … up to ``most``.

    A consumer's first batch of an epoch waits for the whole first element to be made and split; with 16-batch
    elements the generator alone took ~50 ms to its first element, 3–7 ms with the ramp. Through tf.data, RAM-cached
    5,076-locus store, 5 epochs twice: 422–589 ms to each epoch's first batch before, 192–370 ms after (2 shared
    cores at load 14; the rest is mostly tf.data starting an iterator). Short epochs pay that wait every time; the
    ramp costs nothing later, reaching full elements in five steps.
    """
    return min(1 << min(sent, 30), most)


def _stacked(arrays: dict[str, np.ndarray], shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Flat (n, …) arrays reshaped to (batches, batch size, …) (views)."""
    return {name: x.reshape(*shape, *x.shape[1:]) for name, x in arrays.items()}


#: one-hot rows (4 uint8 each, read as one uint32) of the codes A C G T N, then of their complements
_ONE_HOT_ROWS = np.concatenate([sequence.one_hot(np.arange(sequence.N_CODE + 1), np.uint8),
                                sequence.one_hot(sequence.COMPLEMENT_CODE, np.uint8)]).view(np.uint32).ravel()


def one_hot_oriented(codes: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """One-hot uint8 (n, L, 4) of base codes (n, L), complemented in the rows where ``flip`` (N -> zeros).

    One lookup of a 4-byte row per base (the codes of flipped rows are looked up in the complement half of the
    table), ~4x cheaper than TensorFlow's gather of float rows. uint8 keeps host memory traffic and host-to-GPU
    copies 4x smaller; Keras casts the input to the model's dtype on the device.
    """
    shifted = codes + (sequence.N_CODE + 1) * np.asarray(flip, dtype=np.uint8)[:, None]
    out = aligned_empty(codes.shape, np.uint32)
    np.take(_ONE_HOT_ROWS, shifted, out=out, mode="clip")
    return out.view(np.uint8).reshape(*codes.shape, 4)
