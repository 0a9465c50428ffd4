"""The checksum cache: unchanged files are not read again; any change, even one that keeps size and modification
time, is; files changed just before hashing are not remembered; a cache that cannot be written costs nothing."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import blake3
import pytest

from bpnetz.store import checksum
from bpnetz.store.checksum import ChecksumCache, checksum_matches, file_checksum, user_cache_path


def _blake(data: bytes) -> str:
    return f"blake3:{blake3.blake3(data).hexdigest()}"


@pytest.fixture
def hashed(monkeypatch):
    """Counts the files actually read (file_checksum calls)."""
    calls = []

    def counting(path, **options):
        calls.append(os.path.basename(path))
        return file_checksum(path, **options)

    monkeypatch.setattr(checksum, "file_checksum", counting)
    return calls


def test_unchanged_file_is_read_once_and_change_is_seen(tmp_path, hashed, monkeypatch):
    monkeypatch.setattr(checksum, "SETTLED_SECONDS", 0.0)
    data = tmp_path / "genome.fa"
    data.write_bytes(b">c\nACGT\n")
    cache_file = tmp_path / "cache" / "checksums.json"
    first = ChecksumCache(cache_file).checksum(data, md5=True)
    assert first["checksum"] == _blake(b">c\nACGT\n") and first["md5"] == hashlib.md5(b">c\nACGT\n").hexdigest()
    assert ChecksumCache(cache_file).checksum(data, md5=True) == first  # a new process: from the file
    assert hashed == ["genome.fa"]
    # same size, same modification time, other bytes: the change time tells
    stat = data.stat()
    data.write_bytes(b">c\nTTTT\n")
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert ChecksumCache(cache_file).checksum(data)["checksum"] == _blake(b">c\nTTTT\n")
    assert hashed == ["genome.fa", "genome.fa"]


def test_file_changed_just_before_hashing_is_not_remembered(tmp_path, hashed):
    data = tmp_path / "plus.bw"
    data.write_bytes(b"fresh")
    cache = ChecksumCache(tmp_path / "checksums.json")
    assert cache.checksum(data)["checksum"] == _blake(b"fresh")
    assert cache.checksum(data)["checksum"] == _blake(b"fresh")
    assert hashed == ["plus.bw", "plus.bw"]  # changed < SETTLED_SECONDS before: hashed again
    assert not (tmp_path / "checksums.json").exists()


def test_unwritable_cache_only_costs_rehashing(tmp_path, hashed, monkeypatch):
    monkeypatch.setattr(checksum, "SETTLED_SECONDS", 0.0)
    data = tmp_path / "peaks.bed"
    data.write_bytes(b"c\t1\t2\n")
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder would be")
    cache = ChecksumCache(blocker / "checksums.json")
    assert cache.checksum(data)["checksum"] == _blake(b"c\t1\t2\n")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{not json")
    assert ChecksumCache(corrupt).checksum(data)["checksum"] == _blake(b"c\t1\t2\n")


def test_cache_keeps_at_most_max_entries(tmp_path, monkeypatch):
    monkeypatch.setattr(checksum, "SETTLED_SECONDS", 0.0)
    monkeypatch.setattr(checksum, "MAX_ENTRIES", 3)
    cache = ChecksumCache(tmp_path / "checksums.json")
    for i in range(5):
        (tmp_path / f"f{i}").write_bytes(bytes([i]))
        cache.checksum(tmp_path / f"f{i}")
    kept = ChecksumCache(tmp_path / "checksums.json")._entries
    assert [key.split("|")[0].rsplit("/", 1)[-1] for key in kept] == ["f2", "f3", "f4"]


def test_user_cache_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(checksum.CACHE_ENV, "off")
    assert user_cache_path() is None
    monkeypatch.setenv(checksum.CACHE_ENV, str(tmp_path / "c.json"))
    assert user_cache_path() == tmp_path / "c.json"
    monkeypatch.delenv(checksum.CACHE_ENV)
    assert user_cache_path() == Path.home() / ".cache" / "bpnetz" / "checksums.json"


def test_checksums_of_older_stores_are_checked_with_their_algorithm(tmp_path, hashed, monkeypatch):
    """Stores built before BLAKE3 record BLAKE2b-128: verify and the batch records compare with that algorithm."""
    monkeypatch.setattr(checksum, "SETTLED_SECONDS", 0.0)
    data = tmp_path / "plus.bw"
    data.write_bytes(b"counts")
    old = f"blake2b128:{hashlib.blake2b(b'counts', digest_size=16).hexdigest()}"
    assert checksum_matches(data, old) and checksum_matches(data, _blake(b"counts"))
    assert not checksum_matches(data, "sha1:" + hashlib.sha1(b"counts").hexdigest())  # unknown: never a match
    # a cache entry written by an older version (same file, BLAKE2b) is hashed again with BLAKE3
    cache_file = tmp_path / "checksums.json"
    ChecksumCache(cache_file).checksum(data)
    entries = json.loads(cache_file.read_text())
    cache_file.write_text(json.dumps({key: {**entry, "checksum": old} for key, entry in entries.items()}))
    hashed.clear()
    assert ChecksumCache(cache_file).checksum(data)["checksum"] == _blake(b"counts") and hashed == ["plus.bw"]
    data.write_bytes(b"counts, changed")
    assert not checksum_matches(data, old)


def test_no_home_or_unreadable_cache_never_stops_a_build(tmp_path, monkeypatch):
    monkeypatch.delenv(checksum.CACHE_ENV, raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    assert user_cache_path() is None
    data = tmp_path / "genome.fa"
    data.write_bytes(b">c\nAC\n")
    locked = tmp_path / "locked" / "checksums.json"
    real_is_file = Path.is_file

    def refused(self):  # a cache folder this user may not enter (EACCES; root ignores permissions)
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_file(self)

    monkeypatch.setattr(Path, "is_file", refused)
    assert ChecksumCache(locked).checksum(data)["checksum"] == _blake(b">c\nAC\n")


def test_damaged_cache_entries_are_hashed_again(tmp_path, hashed, monkeypatch):
    monkeypatch.setattr(checksum, "SETTLED_SECONDS", 0.0)
    data = tmp_path / "minus.bw"
    data.write_bytes(b"values")
    cache_file = tmp_path / "checksums.json"
    ChecksumCache(cache_file).checksum(data)
    entries = json.loads(cache_file.read_text())
    cache_file.write_text(json.dumps({key: {"checksum": entry["checksum"]} for key, entry in entries.items()}))
    hashed.clear()
    assert ChecksumCache(cache_file).checksum(data) == {"size": 6, "checksum": _blake(b"values")}
    assert hashed == ["minus.bw"]
