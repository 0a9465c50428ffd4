"""Every byte of a store is checked: flipped, truncated or deleted shards of seq, signal, bias and a coordinate
array are named by ``bpnetz store verify`` (exit 1) and end ``train``, ``predict`` and ``shap`` with exit 2; no
command exits 0 on damaged data. Sampled rows are re-derived from the sources (checked here against direct
pyfaidx/pyBigWig reads), and stores built before chunk checksums stay readable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyBigWig
import pyfaidx
import pytest
import zarr

from bpnetz.cli import main as bpnetz_main
from bpnetz.cli import run_guarded
from bpnetz.cli import train as train_cli
from bpnetz.errors import InputError
from bpnetz.genome.sequence import encode
from bpnetz.store import schema
from bpnetz.store.inspect import store_info, verify_store
from bpnetz.store.shards import ShardDecoder
from tests.build.tiny_inputs import INPUT_LEN, OUTPUT_LEN, write_tiny_experiment

ARRAYS = ("seq", "signal", "bias", "summit")  # summit: a locus coordinate (unsharded chunks)
DAMAGES = ("flip", "truncate", "delete")
PARAMS = {"input_len": INPUT_LEN, "output_profile_len": OUTPUT_LEN,
          "motif_module_params": {"filters": [4], "kernel_sizes": [21]},
          "syntax_module_params": {"num_dilation_layers": 2, "filters": 4, "kernel_size": 3},
          "profile_head_params": {"kernel_size": 21}}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A store of the tiny build experiment in 16-locus chunks and 32-locus shards (several shards per array)."""
    from bpnetz.build.builder import build_store

    root = tmp_path_factory.mktemp("integrity")
    experiment = write_tiny_experiment(root / "exp", seed=3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(schema, "CHUNK_LOCI", 16)
        mp.setattr(schema, "SHARD_LOCI", 32)
        build_store(**experiment.build_args(root / "store.zarr"))
    return experiment, root / "store.zarr"


def block_files(store: Path, array: str) -> list[Path]:
    return sorted(p for p in (store / array / "c").rglob("*") if p.is_file())


def damage(path: Path, how: str) -> None:
    """Flip 16 bytes inside the first chunk, cut the file in half, or delete it."""
    if how == "delete":
        path.unlink()
        return
    raw = bytearray(path.read_bytes())
    if how == "flip":
        raw[4:20] = bytes(b ^ 0xFF for b in raw[4:20])
    else:
        raw = raw[:len(raw) // 2]
    path.write_bytes(bytes(raw))


def damaged_copy(built, tmp_path: Path, array: str, how: str, every: bool = False) -> tuple[Path, list[Path]]:
    """A copy of the store with one block (the last one, or ``every`` block) of ``array`` damaged."""
    store = tmp_path / "damaged.zarr"
    shutil.copytree(built[1], store)
    files = block_files(store, array)
    targets = files if every else files[-1:]
    for path in targets:
        damage(path, how)
    return store, targets


def one_paragraph_naming(capsys, targets: list[Path]) -> str:
    """The one error paragraph (after any notices) names a damaged file and the fix."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.endswith(errors[0] + "\n") and "Traceback" not in err, err
    assert any(str(p) in errors[0] for p in targets) and "bpnetz store verify" in errors[0], err
    return errors[0]


# ------------------------------------------------------------------------------------------------- verify


def test_a_fresh_store_records_its_checksums_and_verifies(built, capsys):
    _, store = built
    group = zarr.open_group(str(store), mode="r")
    assert schema.chunk_guarantees(schema.metadata(group)) == {"checksum": "crc32c", "all_written": True}
    for name in (*ARRAYS, "chrom"):  # every chunk of every array ends with its CRC32C
        codecs = group[name].metadata.codecs
        inner = codecs[0].codecs if type(codecs[0]).__name__ == "ShardingCodec" else codecs
        assert type(inner[-1]).__name__ == "Crc32cCodec", name
    assert bpnetz_main(["store", "verify", str(store)]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")
    assert "CRC32C checksum per chunk" in store_info(store)


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("array", ARRAYS)
def test_verify_names_every_damaged_shard_and_exits_1(built, tmp_path, capsys, array, how):
    store, targets = damaged_copy(built, tmp_path, array, how)
    assert bpnetz_main(["store", "verify", str(store)]) == 1
    err = capsys.readouterr().err
    problems = [line for line in err.splitlines() if line.startswith("  - ")]
    assert len(problems) == 1 and str(targets[0]) in problems[0] and f"'{array}'" in problems[0], err
    assert "Traceback" not in err


def test_verify_of_something_else_exits_2_with_one_paragraph(tmp_path, capsys):
    (tmp_path / "plain").mkdir()
    assert bpnetz_main(["store", "verify", str(tmp_path / "plain")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and str(tmp_path / "plain") in err


def test_sampled_rows_equal_direct_reads_and_a_rewritten_row_is_found(built, tmp_path):
    experiment, built_store = built
    store = tmp_path / "rewritten.zarr"
    shutil.copytree(built_store, store)
    group = zarr.open_group(str(store), mode="r+")
    lay = schema.layout(group)
    chrom, summit = group["chrom"][:], group["summit"][:]
    fasta = pyfaidx.Fasta(str(experiment.fasta), as_raw=True, sequence_always_upper=False)
    plus = pyBigWig.open(str(experiment.bigwigs["plus"]))
    for row in (0, len(summit) - 1):  # the rows verify always samples, read directly from the sources
        s0, s1 = lay.seq_window(int(summit[row]))
        np.testing.assert_array_equal(group["seq"][row], encode(fasta[chrom[row]][s0:s1]))
        p0, p1 = lay.profile_window(int(summit[row]))
        direct = np.nan_to_num(np.asarray(plus.values(chrom[row], p0, p1), np.float64))
        np.testing.assert_array_equal(group["signal"][row, :, 0], direct)
    assert verify_store(store).problems == []
    seq = group["seq"][0]
    group["seq"][0] = np.roll(seq, 1)  # valid chunk checksums, wrong bases
    signal = group["signal"][len(summit) - 1]
    group["signal"][len(summit) - 1] = signal[::-1]  # same totals, wrong positions
    problems = verify_store(store).problems
    assert any(p.startswith("array 'seq' row 0 ") and str(experiment.fasta) in p for p in problems), problems
    last = f"row {len(summit) - 1} "
    assert any(p.startswith("array 'signal' track") and last in p for p in problems), problems


def test_a_store_without_chunk_checksums_is_read_and_noted(tmp_path):
    from bpnetz.store.reader import StoreReader
    from tests.store.tiny_store import make_tiny_store

    tiny = make_tiny_store(tmp_path)  # written directly with zarr: no CRC32C per chunk, no chunk record
    result = verify_store(tiny.path)  # (it records no totals nor sources: those are problems of their own)
    assert any("no CRC32C checksums" in note for note in result.notes)
    assert not [p for p in result.problems if "array" in p or "row" in p], result.problems
    assert "rebuild it with 'bpnetz build'" in store_info(tiny.path)
    reader = StoreReader(tiny.path)
    assert not reader.all_written
    rows = reader.read_rows(np.arange(reader.n_loci))
    np.testing.assert_array_equal(rows.seq, zarr.open_group(str(tiny.path), mode="r")["seq"][:])


# ------------------------------------------------------------------------------------------------ readers


@pytest.mark.parametrize("how", DAMAGES)
def test_the_shard_decoder_names_file_array_and_chunk(built, tmp_path, how):
    store, targets = damaged_copy(built, tmp_path, "seq", how)
    decoder = ShardDecoder.for_array(zarr.open_group(str(store), mode="r")["seq"], all_written=True)
    assert decoder is not None and decoder.chunk_crc
    shard = len(block_files(built[1], "seq")) - 1
    rows = decoder.n_rows - shard * decoder.shard_rows
    with pytest.raises(InputError) as info:
        decoder.read_into(shard, np.empty((rows, *decoder.row_shape), np.uint8))
    message = str(info.value)
    assert str(targets[0]) in message and "array 'seq'" in message and "bpnetz store verify" in message
    assert {"flip": "chunk 0 fails its CRC32C", "truncate": "CRC32C", "delete": "is missing"}[how] in message


def test_an_absent_chunk_inside_a_shard_is_damage(built, tmp_path):
    """A shard whose index marks a chunk as never written (zarr's empty-chunk entry) is damage in a built store."""
    store = tmp_path / "absent.zarr"
    shutil.copytree(built[1], store)
    path = block_files(store, "seq")[0]
    raw = bytearray(path.read_bytes())
    n = 16 * 2  # two chunks per shard: the index is 2 x (offset, nbytes), then its CRC32C
    index = np.frombuffer(bytes(raw[-n - 4:-4]), "<u8").copy().reshape(-1, 2)
    index[1] = 2**64 - 1
    import google_crc32c

    raw[-n - 4:] = index.tobytes() + google_crc32c.value(index.tobytes()).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    decoder = ShardDecoder.for_array(zarr.open_group(str(store), mode="r")["seq"], all_written=True)
    with pytest.raises(InputError, match=r"chunk 1 \(rows 16-31\) is absent"):
        decoder.read_into(0, np.empty((32, *decoder.row_shape), np.uint8))


# ------------------------------------------------------------------------------------- train, predict, shap


@pytest.fixture(scope="module")
def model_dir(built, tmp_path_factory):
    from tests.tiny_model import save_model_dir

    path = tmp_path_factory.mktemp("integrity_model") / "model_split000"
    save_model_dir(path, built[1], schema.layout(zarr.open_group(str(built[1]), mode="r")), PARAMS,
                   split={"0": {"val": ["chr1"], "test": ["chr2"]}})
    return path


@pytest.mark.parametrize("array, how, cache", [("seq", "flip", "auto"), ("bias", "delete", "auto"),
                                               ("signal", "truncate", "disk"), ("seq", "delete", "disk"),
                                               ("summit", "flip", "auto")])
def test_train_exits_2_naming_the_shard(built, tmp_path, capsys, array, how, cache):
    store, targets = damaged_copy(built, tmp_path, array, how, every=True)
    params = tmp_path / "bpnet_params.json"
    params.write_text(json.dumps(PARAMS))
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"0": {"train": ["chr1"], "val": ["chr2"], "test": []}}))
    argv = ["--store", str(store), "--params", str(params), "--splits", str(splits), "-d", str(tmp_path / "out"),
            "--epochs", "1", "-b", "16", "--quiet", *(["--cache", "disk"] if cache == "disk" else [])]
    assert run_guarded(train_cli.main, argv) == 2
    one_paragraph_naming(capsys, targets)


@pytest.mark.parametrize("array, how", [("seq", "flip"), ("signal", "delete"), ("summit", "truncate")])
def test_predict_exits_2_naming_the_shard(built, model_dir, tmp_path, capsys, array, how):
    store, targets = damaged_copy(built, tmp_path, array, how, every=True)
    argv = ["predict", "--model", str(model_dir), "--store", str(store), "--output-dir", str(tmp_path / "o"),
            "--quiet"]
    assert bpnetz_main(argv) == 2
    one_paragraph_naming(capsys, targets)
    assert not list((tmp_path / "o").glob("*.h5"))


@pytest.mark.parametrize("array, how", [("seq", "truncate"), ("bias", "flip")])
def test_shap_exits_2_naming_the_shard(built, model_dir, tmp_path, capsys, array, how):
    store, targets = damaged_copy(built, tmp_path, array, how, every=True)
    argv = ["shap", "--model", str(model_dir), "--store", str(store), "--output-dir", str(tmp_path / "o"),
            "--num-shuffles", "2", "--quiet"]
    assert bpnetz_main(argv) == 2
    one_paragraph_naming(capsys, targets)


def test_the_xarray_view_refuses_a_store_with_a_missing_shard(built, tmp_path):
    from bpnetz.store.dataset import open_dataset

    assert int(open_dataset(built[1])["seq"].isel(locus=0).sum()) >= 0  # the intact store opens and computes
    store, targets = damaged_copy(built, tmp_path, "signal", "delete")
    with pytest.raises(InputError, match="array 'signal': the shard file of rows .* is missing") as info:
        open_dataset(store)
    assert str(targets[0]) in str(info.value)
