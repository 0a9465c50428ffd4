"""File checksums and the content ids of stores.

File checksums are BLAKE2b (128-bit) of the file's bytes, ``"blake2b128:<hex>"``; the genome additionally gets
its MD5 (the customary genome fingerprint), computed in the same pass. Files are read in 8 MiB blocks, so a
multi-GB genome or bigWig costs one sequential read (~1 GB/s).

Two ids are derived from them:

- the *build key* (:func:`build_key`): what a build depends on — the source checksums and the build
  arguments. It decides whether a partial build may be resumed and names cached stores.
- the *content id* (:func:`content_id`): what a store holds — source checksums, layout and the loci. Two stores
  with the same content id hold the same arrays; models record it to name the data they were trained on.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

CHECKSUM_ALGORITHM = "blake2b128"
_BLOCK = 8 << 20


def _blake2b() -> Any:
    return hashlib.blake2b(digest_size=16)


def file_checksum(path: str | Path, *, md5: bool = False) -> dict[str, Any]:
    """``{"size", "checksum"}`` (+ ``"md5"`` when asked) of a file, in one sequential read."""
    digests = {"checksum": _blake2b()}
    if md5:
        digests["md5"] = hashlib.md5(usedforsecurity=False)
    buffer = bytearray(_BLOCK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            for digest in digests.values():
                digest.update(view[:n])
    result: dict[str, Any] = {"size": os.path.getsize(path)}
    result["checksum"] = f"{CHECKSUM_ALGORITHM}:{digests['checksum'].hexdigest()}"
    if md5:
        result["md5"] = digests["md5"].hexdigest()
    return result


class ChecksumCache:
    """File checksums remembered by (absolute path, size, mtime) in a JSON file, so unchanged files are not
    re-read (used by the store cache, where the same multi-GB inputs are checked on every command). Safe to call
    from several threads."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        if self.path is not None and self.path.is_file():
            try:
                self._entries = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError):
                self._entries = {}

    def checksum(self, path: str | Path, *, md5: bool = False) -> dict[str, Any]:
        """Like :func:`file_checksum`, reusing a remembered result for an unchanged file."""
        path = Path(path).resolve()
        stat = path.stat()
        key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
        entry = self._entries.get(key)
        if entry is None or (md5 and "md5" not in entry):
            entry = file_checksum(path, md5=md5)
            with self._lock:  # the builder checksums its sources in several threads
                self._entries[key] = entry
                self._save()
        return dict(entry)

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._entries))
        os.replace(tmp, self.path)


def _hash_json(value: Any) -> str:
    return hashlib.blake2b(json.dumps(value, sort_keys=True).encode(), digest_size=16).hexdigest()


def build_key(source_checksums: list[str], build_args: dict[str, Any]) -> str:
    """Id of a build: its sources' checksums (in source order) and its arguments (lengths, chroms, ...)."""
    return _hash_json({"sources": source_checksums, "args": build_args})


def content_id(source_checksums: list[str], layout: dict[str, Any], loci: dict[str, np.ndarray]) -> str:
    """Content id of a store: sources' checksums, layout and every locus coordinate column."""
    digest = _blake2b()
    digest.update(json.dumps({"sources": source_checksums, "layout": layout}, sort_keys=True).encode())
    for name in sorted(loci):
        column = loci[name]
        digest.update(name.encode())
        if column.dtype == object or column.dtype.kind in "UT":
            digest.update("\0".join(map(str, column.tolist())).encode())
        else:
            digest.update(np.ascontiguousarray(column.astype(column.dtype.newbyteorder("<"))).tobytes())
    return f"{CHECKSUM_ALGORITHM}:{digest.hexdigest()}"
