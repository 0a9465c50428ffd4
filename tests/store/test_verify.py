"""store info / verify: a fresh store verifies; tampered totals, missing shards and changed sources are found."""

from __future__ import annotations

import shutil

import pytest
import zarr

from bpnetz.build.builder import build_store
from bpnetz.cli import main as cli_main
from bpnetz.store import schema
from bpnetz.store.inspect import store_info, verify_store
from tests.build.tiny_inputs import write_tiny_experiment


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(schema, "CHUNK_LOCI", 16)
    monkeypatch.setattr(schema, "SHARD_LOCI", 32)
    experiment = write_tiny_experiment(tmp_path / "exp", seed=11)
    build_store(**experiment.build_args(tmp_path / "store.zarr"))
    return experiment, tmp_path / "store.zarr"


def test_fresh_store_verifies_and_info_prints_the_record(store, capsys):
    experiment, path = store
    assert verify_store(path).problems == []
    assert cli_main(["store", "verify", str(path)]) == 0
    assert cli_main(["store", "info", str(path)]) == 0
    out = capsys.readouterr().out
    meta = schema.metadata(zarr.open_group(str(path), mode="r"))
    assert meta["checksum"] in out and str(experiment.bigwigs["plus"]) in out and "rejected" in out
    assert f"{meta['totals']['signal']['0/+']:,}" in out


def test_tampered_total_is_a_problem(store, capsys):
    _, path = store
    group = zarr.open_group(str(path), mode="r+")
    meta = dict(group.attrs)[schema.ATTR_KEY]
    meta["totals"]["signal"]["0/-"] += 1
    group.attrs[schema.ATTR_KEY] = meta
    problems = verify_store(path).problems
    assert len(problems) == 1 and "0/-" in problems[0]
    assert cli_main(["store", "verify", str(path)]) == 1
    assert "0/-" in capsys.readouterr().err


def test_missing_shard_is_a_problem_and_info_still_works(store):
    _, path = store
    shutil.rmtree(path / "signal" / "c" / "1")
    problems = verify_store(path).problems
    assert problems == ["array 'signal': rows 32-63 were never written or are missing (shard file "
                        f"{path / 'signal' / 'c' / '1' / '0' / '0'})"]
    assert "content id" in store_info(path)  # info reads no array


def test_changed_source_and_content_id(store):
    experiment, path = store
    with open(experiment.background, "a") as handle:
        handle.write("chr1\t1000\t1100\n")
    assert any("background.bed has size" in p for p in verify_store(path).problems)
    assert verify_store(path, check_sources=False).problems == []
    group = zarr.open_group(str(path), mode="r+")
    group["summit"][0] = group["summit"][0] + 1
    assert any("content id" in p for p in verify_store(path, check_sources=False).problems)


def test_unreachable_sources_are_notes_not_problems(store):
    experiment, path = store
    experiment.peaks.unlink()
    result = verify_store(path)
    assert result.ok and any("peaks.narrowPeak" in n for n in result.notes)
