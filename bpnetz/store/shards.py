"""Decode whole shards of a store array straight into the loader's buffers.

The loader reads a store one shard (4,096 loci) at a time. Through zarr-python, a shard read costs about twice
its decompression: chunk buffers are allocated, decoded, then copied into the result (measured 36 µs per
2114/1000 locus against 15 µs of Blosc decoding). A store written by ``bpnetz build`` has one simple layout:
a local directory, one shard per block of loci holding whole rows, Blosc-compressed little-endian chunks and a
CRC32C-checked index at the shard's end (the Zarr v3 ``sharding_indexed`` codec). :class:`ShardDecoder` reads
exactly that layout with one file read per shard and decodes each chunk in place into the caller's array
(Blosc releases the GIL, so reader threads decode in parallel). A store in object storage (zarr's
``FsspecStore``) is read the same way, one whole-object GET per shard (:class:`RemoteShards`, with read-ahead).
Any other layout (another codec, a zip store, a big-endian machine) returns ``None`` from
:meth:`ShardDecoder.for_array`, and the caller reads through zarr-python.

Integrity: a store written by ``bpnetz build`` ends every inner chunk with its CRC32C (the ``crc32c`` codec after
Blosc) and writes every chunk (see ``schema.CHUNK_GUARANTEES``). The decoder checks each chunk's CRC32C before
decoding it (google_crc32c, ~20 GB/s: a 4,096 × 2,114 ``seq`` shard of 2.2 MB decodes in 10.9 ms with the check
and 11.0 ms without, best of 40 on a 2-core CPU machine) and, when the store records that every
chunk was written (``all_written``), treats an absent shard file or an index entry marked empty as damage. Every
problem, including a Blosc error on a chunk of an older store without checksums, is an
:class:`~bpnetz.errors.InputError` naming the shard file, the array and the chunk, with the fix. Reads through
zarr-python (:func:`read_checked`) get the same guarantees for absent shards or chunks; zarr's ``crc32c`` codec checks
the chunks, and any zarr error becomes an InputError naming the file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from bpnetz.errors import InputError
from bpnetz.files.remote import storage_error

#: offset/length pair marking an inner chunk that was never written (all fill value)
_EMPTY = np.uint64(2**64 - 1)
_CRC_BYTES = 4


#: what to do about a damaged store, in every integrity error
FIX = "Run 'bpnetz store verify' on the store (it lists every damaged shard) and rebuild it with 'bpnetz build'."


class ShardDecoder:
    """Shard reads of one sharded array, decoded into caller buffers (see the module docstring)."""

    def __init__(self, array: Any, directory: Path, shard_rows: int, chunk_rows: int, *, chunk_crc: bool = False,
                 all_written: bool = False):
        self.array = array
        self.name = array_name(array)
        self.directory = directory
        self.shard_rows = shard_rows
        self.chunk_rows = chunk_rows
        self.n_rows = int(array.shape[0])
        self.row_shape = tuple(int(s) for s in array.shape[1:])
        self.dtype = np.dtype(array.dtype)
        self.fill_value = array.metadata.fill_value
        self.chunks_per_shard = shard_rows // chunk_rows
        #: every inner chunk ends with the CRC32C of its compressed bytes
        self.chunk_crc = chunk_crc
        #: the store wrote every chunk: an absent shard or chunk is damage, not the fill value
        self.all_written = all_written

    @classmethod
    def for_array(cls, array: Any, *, all_written: bool = False) -> ShardDecoder | None:
        """A decoder for ``array`` when it has the layout ``bpnetz build`` writes, else None."""
        from zarr.codecs import Crc32cCodec
        from zarr.storage import FsspecStore, LocalStore

        codecs = getattr(array.metadata, "codecs", ())
        store = array.store_path.store
        if not _simple_layout(array, (LocalStore, FsspecStore)):
            return None
        sharding = codecs[0]
        inner, shard_shape = [type(c) for c in sharding.codecs], tuple(array.shards or ())
        decoder = cls(array, Path(getattr(store, "root", ".")) / array.store_path.path, int(shard_shape[0]),
                      int(sharding.chunk_shape[0]), chunk_crc=inner[-1] is Crc32cCodec, all_written=all_written)
        if isinstance(store, FsspecStore):
            decoder.remote = RemoteShards(store, array.store_path.path)
        return decoder

    #: whole-object GETs with read-ahead when the array lives in object storage (None: a local directory)
    remote: RemoteShards | None = None

    def shard_key(self, shard: int) -> str:
        return self.array.metadata.encode_chunk_key((shard,) + (0,) * len(self.row_shape))

    def shard_path(self, shard: int) -> Path | str:
        if self.remote is not None:
            return self.remote.url(self.shard_key(shard))
        return self.directory / self.shard_key(shard)

    def prefetch(self, shards: list[int]) -> None:
        """Start fetching these shards' objects (remote arrays only; a local file read needs no read-ahead)."""
        if self.remote is not None:
            self.remote.prefetch([self.shard_key(s) for s in shards])

    def _shard_bytes(self, shard: int) -> bytes | None:
        """The whole shard object or file; None when it does not exist."""
        if self.remote is not None:
            return self.remote.read(self.shard_key(shard))
        try:
            return self.shard_path(shard).read_bytes()  # type: ignore[union-attr]
        except FileNotFoundError:
            return None

    def rows_in(self, shard: int) -> int:
        """Rows of ``shard`` (the array's last shard may be shorter)."""
        return min(self.shard_rows, self.n_rows - shard * self.shard_rows)

    def chunks_in(self, shard: int) -> int:
        """Inner chunks of ``shard`` that lie inside the array."""
        return -(-self.rows_in(shard) // self.chunk_rows)

    def read_into(self, shard: int, out: np.ndarray) -> None:
        """Decode the rows of ``shard`` into ``out`` (C-contiguous, shape (rows of the shard, *row_shape))."""
        lo = shard * self.shard_rows
        rows = self.rows_in(shard)
        if out.shape != (rows, *self.row_shape) or not out.flags.c_contiguous or out.dtype != self.dtype:
            raise ValueError(f"shard {shard}: expected a C-contiguous {self.dtype} buffer of shape "
                             f"{(rows, *self.row_shape)}, got {out.dtype} {out.shape}")
        path = self.shard_path(shard)
        data = self._shard_bytes(shard)
        if data is None:
            if self.all_written:
                raise self._damaged(path, f"the shard file of rows {lo}-{lo + rows - 1} is missing") from None
            out[...] = self.fill_value  # an older store: a shard never written holds only the fill value
            return
        entries = self._index(path, data)
        flat = out.reshape(rows, -1)
        for i, (offset, nbytes) in enumerate(entries):
            first = i * self.chunk_rows
            if first >= rows:
                break
            last = min(first + self.chunk_rows, rows)
            if offset == _EMPTY and nbytes == _EMPTY:
                if self.all_written:
                    raise self._damaged(path, f"chunk {i} (rows {lo + first}-{lo + last - 1}) is absent")
                flat[first:last] = self.fill_value
                continue
            source = self._chunk_bytes(path, data, i, int(offset), int(nbytes))
            self._decode(path, i, source, flat[first:last])

    def _index(self, path: Path, data: bytes) -> np.ndarray:
        """The (offset, nbytes) pairs of the shard's chunks, after checking the index's CRC32C."""
        index_bytes = 16 * self.chunks_per_shard
        if len(data) < index_bytes + _CRC_BYTES:
            raise self._damaged(path, "the file is shorter than its chunk index (truncated?)")
        index = data[len(data) - index_bytes - _CRC_BYTES:len(data) - _CRC_BYTES]
        if _crc32c(memoryview(index)) != data[len(data) - _CRC_BYTES:]:
            raise self._damaged(path, "its chunk index fails its CRC32C checksum (damaged or truncated)")
        return np.frombuffer(index, dtype="<u8").reshape(self.chunks_per_shard, 2)

    def _chunk_bytes(self, path: Path, data: bytes, chunk: int, offset: int, nbytes: int) -> memoryview:
        """The compressed bytes of one chunk, after checking they lie in the file and match their CRC32C."""
        if offset + nbytes > len(data) - 16 * self.chunks_per_shard - _CRC_BYTES:
            raise self._damaged(path, f"chunk {chunk} lies outside the file")
        body = memoryview(data)[offset:offset + nbytes]
        if not self.chunk_crc:
            return body
        if nbytes < _CRC_BYTES or _crc32c(body[:-_CRC_BYTES]) != body[-_CRC_BYTES:]:
            raise self._damaged(path, f"chunk {chunk} fails its CRC32C checksum")
        return body[:-_CRC_BYTES]

    def _decode(self, path: Path, chunk: int, source: memoryview, target: np.ndarray) -> None:
        """Blosc-decode one chunk into ``target`` (its rows inside the array; the array's last chunk is stored
        whole, padded)."""
        from numcodecs import blosc

        try:
            if len(target) == self.chunk_rows:
                blosc.decompress(source, target)
            else:
                whole = np.empty((self.chunk_rows, target.shape[1]), self.dtype)
                blosc.decompress(source, whole)
                target[...] = whole[:len(target)]
        except Exception as err:  # noqa: BLE001 (Blosc reports damage as RuntimeError/ValueError, naming no file)
            raise self._damaged(path, f"chunk {chunk} cannot be decompressed ({err})") from None

    def _damaged(self, path: Path, what: str) -> InputError:
        return InputError(f"the store is damaged: array '{self.name}': {what}.", path=path, fix=FIX)


def _simple_layout(array: Any, stores: tuple[type, ...]) -> bool:
    """Whether ``array`` has the layout ``bpnetz build`` writes (see the module docstring), in one of ``stores``."""
    from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec
    from zarr.codecs.sharding import ShardingCodecIndexLocation

    codecs = getattr(array.metadata, "codecs", ())
    if sys.byteorder != "little" or len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        return False
    sharding = codecs[0]
    inner, index = [type(c) for c in sharding.codecs], sharding.index_codecs
    shard_shape = tuple(array.shards or ())
    whole_rows = (len(shard_shape) == array.ndim and tuple(shard_shape[1:]) == tuple(array.shape[1:])
                  and tuple(sharding.chunk_shape[1:]) == tuple(array.shape[1:])
                  and shard_shape[0] % sharding.chunk_shape[0] == 0)
    return (isinstance(array.store_path.store, stores) and whole_rows
            and sharding.index_location == ShardingCodecIndexLocation.end
            and inner in ([BytesCodec, BloscCodec], [BytesCodec, BloscCodec, Crc32cCodec])
            and [type(c) for c in index] == [BytesCodec, Crc32cCodec]
            and (np.dtype(array.dtype).itemsize == 1 or _little(sharding.codecs[0])) and _little(index[0])
            and np.dtype(array.dtype).kind in "biuf")


class ShardEncoder:
    """Whole shards of a local array in the layout ``bpnetz build`` writes, encoded without zarr-python: the bytes
    zarr's sharding codec writes (each chunk Blosc-compressed with the array's own settings, padded with the fill
    value past the array's end, followed by its CRC32C; the index of (offset, size) pairs, ``2**64 - 1`` for
    chunks past the array's end, and its CRC32C last), one file write per shard.

    Why: zarr-python spent ~0.1 CPU-s per 4,096-locus block on top of Blosc's own ~0.1 s (chunk buffers, its event
    loop, the morton-ordered shard dictionary), and its event-loop thread competes with the block tasks for the
    GIL. Blosc (numcodecs) releases the GIL; ``tests/store/test_shards.py`` checks the bytes against zarr's.
    """

    def __init__(self, array: Any):
        from numcodecs import Blosc

        sharding = array.metadata.codecs[0]
        blosc = sharding.codecs[1]
        self.decoder = ShardDecoder(array, Path(array.store_path.store.root) / array.store_path.path,
                                    int(array.shards[0]), int(sharding.chunk_shape[0]))
        self.crc = len(sharding.codecs) == 3
        shuffle = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}
        self.blosc = Blosc(cname=blosc.cname.value, clevel=blosc.clevel, shuffle=shuffle[blosc.shuffle.value],
                           blocksize=blosc.blocksize, typesize=blosc.typesize)

    @classmethod
    def for_array(cls, array: Any) -> ShardEncoder | None:
        """An encoder for a local array of the build's layout, else None (the caller writes through zarr). It writes
        every chunk, all-zero ones included (``schema.CHUNK_GUARANTEES``), whatever the array's runtime
        ``write_empty_chunks``."""
        from zarr.storage import LocalStore

        return cls(array) if _simple_layout(array, (LocalStore,)) else None

    def write(self, shard: int, rows: np.ndarray) -> None:
        """Write all rows of ``shard`` (shape (rows of the shard, *row_shape), any dtype castable exactly)."""
        dec = self.decoder
        n = dec.rows_in(shard)
        if rows.shape != (n, *dec.row_shape):
            raise ValueError(f"shard {shard}: expected rows of shape {(n, *dec.row_shape)}, got {rows.shape}")
        self.write_encoded(shard, [self.encode_chunk(rows[first:first + dec.chunk_rows])
                                   for first in range(0, n, dec.chunk_rows)])

    def encode_chunk(self, rows: np.ndarray) -> bytes:
        """The stored bytes of one inner chunk (its rows; fewer than a chunk only for the array's last chunk, which
        is padded with the fill value): Blosc-compressed, then its CRC32C when the array has one."""
        dec = self.decoder
        flat = np.ascontiguousarray(rows, dtype=dec.dtype).reshape(len(rows), -1)
        if len(flat) < dec.chunk_rows:
            flat = np.concatenate([flat, np.full((dec.chunk_rows - len(flat), flat.shape[1]), dec.fill_value,
                                                 dtype=dec.dtype)])
        body = self.blosc.encode(flat.view(np.uint8))
        return body + _crc32c(memoryview(body)) if self.crc else body

    def write_encoded(self, shard: int, chunks: list[bytes]) -> None:
        """Write ``shard`` from its chunks' stored bytes (:meth:`encode_chunk`, in order, every chunk of the shard
        inside the array): the chunks, then the index and its CRC32C, in one file write."""
        dec = self.decoder
        expected = dec.chunks_in(shard)
        if len(chunks) != expected:
            raise ValueError(f"shard {shard}: expected {expected} chunks, got {len(chunks)}")
        index = np.full((dec.chunks_per_shard, 2), _EMPTY, dtype="<u8")
        sizes = np.array([len(chunk) for chunk in chunks], dtype="<u8")
        index[:len(chunks), 0] = np.cumsum(sizes) - sizes
        index[:len(chunks), 1] = sizes
        path = dec.shard_path(shard)
        path.parent.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        with open(path, "wb") as handle:
            handle.write(b"".join([*chunks, index.tobytes(), _crc32c(memoryview(index.tobytes()))]))


class RemoteShards:
    """Whole shard objects of one array in object storage, fetched by GETs running concurrently on zarr's event
    loop: :meth:`prefetch` starts the GETs of the shards read next (the loader's read-ahead), :meth:`read` waits
    for one (starting it when it was not prefetched). Each shard is then decoded by the same CRC-checked decoder
    as a local file."""

    def __init__(self, store: Any, array_path: str):
        import threading

        self.fs = store.fs
        self.root = f"{store.path.rstrip('/')}/{array_path}".rstrip("/")
        self.protocol = (self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0])
        self._pending: dict[str, Any] = {}
        self._lock = threading.Lock()

    def url(self, key: str) -> str:
        return f"{self.protocol}://{self.root}/{key}"

    async def _get(self, key: str) -> bytes | None:
        try:
            return await self.fs._cat_file(f"{self.root}/{key}")
        except FileNotFoundError:
            return None

    def _start(self, key: str) -> Any:
        import asyncio

        from zarr.core.sync import _get_loop

        return asyncio.run_coroutine_threadsafe(self._get(key), _get_loop())

    def prefetch(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                if key not in self._pending:
                    self._pending[key] = self._start(key)

    def read(self, key: str) -> bytes | None:
        with self._lock:
            future = self._pending.pop(key, None)
        try:
            return (future or self._start(key)).result()
        except Exception as err:  # noqa: BLE001 (botocore/aiohttp raise many types)
            raise storage_error(err, self.url(key), "reading a shard") from None


def array_name(array: Any) -> str:
    """The array's name inside its store (``seq``, ``signal``, ``chrom``, ...)."""
    return str(array.path or array.name).strip("/").split("/")[-1]


def block_path(array: Any, block: int) -> str:
    """Where the shard (or chunk, in an unsharded array) holding rows of ``block`` is stored."""
    key = array.metadata.encode_chunk_key((block,) + (0,) * (array.ndim - 1))
    store = array.store_path.store
    root = getattr(store, "root", None)
    prefix = str(Path(root) / array.path) if root is not None else f"{store}/{array.path}"
    return f"{prefix}/{key}"


def absent_blocks(array: Any, lo: int = 0, hi: int | None = None) -> list[tuple[int, int, str]]:
    """``(first row, last row + 1, path)`` of each absent shard (or chunk, when unsharded) covering rows [lo, hi)."""
    from zarr.core.sync import sync

    rows = int((array.shards or array.chunks)[0])
    hi = int(array.shape[0]) if hi is None else hi
    absent = []
    for block in range(lo // rows, -(-hi // rows)):
        key = array.metadata.encode_chunk_key((block,) + (0,) * (array.ndim - 1))
        if not sync(array.store.exists(f"{array.path}/{key}" if array.path else key)):
            absent.append((block * rows, min((block + 1) * rows, int(array.shape[0])), block_path(array, block)))
    return absent


def require_blocks(array: Any, lo: int, hi: int) -> None:
    """InputError naming the first absent shard (or chunk) file covering rows [lo, hi) of an array whose store
    wrote every chunk."""
    for first, last, path in absent_blocks(array, lo, hi):
        raise InputError(f"the store is damaged: array '{array_name(array)}': the shard file of rows {first}-"
                         f"{last - 1} is missing.", path=path, fix=FIX)


def read_checked(array: Any, lo: int, hi: int, *, all_written: bool) -> np.ndarray:
    """Rows [lo, hi) of an array read through zarr-python, with the decoder's guarantees: an absent shard or chunk
    (when the store wrote them all) and any read error (zarr's CRC32C codec, a damaged index) are InputErrors naming
    the file."""
    name = array_name(array)
    if all_written:
        require_blocks(array, lo, hi)
    try:
        return np.asarray(array[lo:hi])
    except Exception as err:  # noqa: BLE001 (zarr names no file: a CRC mismatch is a ValueError, bad streams others)
        rows = int((array.shards or array.chunks)[0])
        paths = ", ".join(block_path(array, b) for b in range(lo // rows, -(-hi // rows)))
        raise InputError(f"the store is damaged: array '{name}', rows {lo}-{hi - 1} cannot be read "
                         f"({type(err).__name__}: {err}).", path=paths, fix=FIX) from None


def _crc32c(data: memoryview) -> bytes:
    """CRC32C of ``data`` as the 4 little-endian bytes Zarr stores (google_crc32c takes a numpy view, not a slice
    of a memoryview, without copying it)."""
    import google_crc32c

    return int(google_crc32c.value(np.frombuffer(data, np.uint8))).to_bytes(4, "little")


def _little(codec: Any) -> bool:
    endian = getattr(codec, "endian", None)
    return endian is None or getattr(endian, "value", endian) == "little"
