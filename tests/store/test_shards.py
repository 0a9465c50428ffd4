"""Direct shard decoding against zarr-python's own reads of the same arrays."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec

from bpnetz.errors import InputError
from bpnetz.store.shards import ShardDecoder, ShardEncoder

SHARD, CHUNK = 256, 64


def blosc_array(path, data: np.ndarray, *, shuffle: str = "bitshuffle", write_empty_chunks: bool = False):
    """An array with the layout ``bpnetz build`` writes: whole-row shards of Blosc chunks."""
    array = zarr.create_array(str(path), shape=data.shape, dtype=data.dtype, chunks=(CHUNK, *data.shape[1:]),
                              shards=(SHARD, *data.shape[1:]), fill_value=0,
                              compressors=BloscCodec(cname="zstd", clevel=3, shuffle=shuffle),
                              config={"write_empty_chunks": write_empty_chunks})
    array[:] = data
    return zarr.open_array(str(path), mode="r")


def decoded(decoder: ShardDecoder, shard: int) -> np.ndarray:
    rows = min(decoder.shard_rows, decoder.n_rows - shard * decoder.shard_rows)
    out = np.full((rows, *decoder.row_shape), 99, dtype=decoder.dtype)
    decoder.read_into(shard, out)
    return out


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_every_shard_equals_zarrs_read(tmp_path, dtype):
    rng = np.random.default_rng(0)
    data = rng.poisson(0.3, size=(700, 30, 2)).astype(dtype)  # 2 full shards and a short one (188 rows)
    data[256 + 64:256 + 128] = 0  # an all-zero chunk: not written, marked empty in the shard index
    array = blosc_array(tmp_path / "a.zarr", data)
    decoder = ShardDecoder.for_array(array)
    assert decoder is not None and decoder.shard_rows == SHARD
    for shard in range(3):
        lo = shard * SHARD
        np.testing.assert_array_equal(decoded(decoder, shard), array[lo:lo + SHARD])


def test_a_shard_never_written_reads_as_the_fill_value(tmp_path):
    data = np.ones((600, 10), np.uint8)
    data[SHARD:2 * SHARD] = 0  # the whole second shard is empty: zarr writes no file for it
    array = blosc_array(tmp_path / "a.zarr", data)
    decoder = ShardDecoder.for_array(array)
    assert not decoder.shard_path(1).exists()
    np.testing.assert_array_equal(decoded(decoder, 1), np.zeros((SHARD, 10), np.uint8))
    np.testing.assert_array_equal(decoded(decoder, 2), array[2 * SHARD:])


def test_other_layouts_are_left_to_zarr(tmp_path):
    data = np.arange(600 * 4, dtype=np.int32).reshape(600, 4)
    default_codec = zarr.create_array(str(tmp_path / "zstd.zarr"), shape=data.shape, dtype=data.dtype,
                                      chunks=(CHUNK, 4), shards=(SHARD, 4))
    unsharded = zarr.create_array(str(tmp_path / "plain.zarr"), shape=data.shape, dtype=data.dtype,
                                  chunks=(CHUNK, 4), compressors=BloscCodec(cname="zstd"))
    split_rows = zarr.create_array(str(tmp_path / "rows.zarr"), shape=data.shape, dtype=data.dtype,
                                   chunks=(CHUNK, 2), shards=(SHARD, 4), compressors=BloscCodec(cname="zstd"))
    assert ShardDecoder.for_array(default_codec) is None
    assert ShardDecoder.for_array(unsharded) is None
    assert ShardDecoder.for_array(split_rows) is None


def test_a_damaged_shard_index_names_the_file(tmp_path):
    array = blosc_array(tmp_path / "a.zarr", np.ones((300, 8), np.int32))
    decoder = ShardDecoder.for_array(array)
    path = decoder.shard_path(0)
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF  # inside the chunk index, covered by its CRC32C
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="CRC32C") as info:
        decoded(decoder, 0)
    assert str(path) in str(info.value) and "bpnetz store verify" in str(info.value)


def test_a_wrongly_shaped_buffer_is_refused(tmp_path):
    decoder = ShardDecoder.for_array(blosc_array(tmp_path / "a.zarr", np.ones((300, 8), np.int32)))
    with pytest.raises(ValueError, match="shape"):
        decoder.read_into(1, np.empty((SHARD, 8), np.int32))  # shard 1 holds 44 rows


@pytest.mark.parametrize(("dtype", "shuffle"), [(np.uint8, "bitshuffle"), (np.int32, "bitshuffle"),
                                                (np.float32, "shuffle")])
def test_encoded_shards_are_zarrs_bytes(tmp_path, dtype, shuffle):
    from zarr.codecs import Crc32cCodec

    rng = np.random.default_rng(1)
    data = rng.poisson(0.4, size=(700, 30, 2)).astype(dtype)  # the last shard: 2 chunks, a padded one, 1 absent
    data[64:128] = 0  # an all-zero chunk: written all the same (the build's stores write every chunk)
    arrays = {}
    for name in ("zarr", "encoder"):
        arrays[name] = zarr.create_array(
            str(tmp_path / f"{name}.zarr"), shape=data.shape, dtype=dtype, chunks=(CHUNK, 30, 2),
            shards=(SHARD, 30, 2), fill_value=0, config={"write_empty_chunks": name == "zarr"},
            compressors=[BloscCodec(cname="zstd", clevel=3, shuffle=shuffle), Crc32cCodec()])
    arrays["zarr"][:] = data
    encoder = ShardEncoder.for_array(arrays["encoder"])
    for shard in range(3):
        encoder.write(shard, data[shard * SHARD:(shard + 1) * SHARD])
    for shard in range(3):
        zarr_bytes = ShardDecoder.for_array(arrays["zarr"]).shard_path(shard).read_bytes()
        assert encoder.decoder.shard_path(shard).read_bytes() == zarr_bytes
    decoder = ShardDecoder.for_array(zarr.open_array(str(tmp_path / "encoder.zarr")), all_written=True)
    np.testing.assert_array_equal(decoded(decoder, 0), data[:SHARD])


def test_no_encoder_for_other_layouts(tmp_path):
    plain = zarr.create_array(str(tmp_path / "plain.zarr"), shape=(600, 4), dtype=np.int32, chunks=(CHUNK, 4))
    assert ShardEncoder.for_array(plain) is None
