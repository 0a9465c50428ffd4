"""File checksums and the content ids of stores.

File checksums are BLAKE3 (256-bit) of the file's bytes, ``"blake3:<hex>"``; the genome additionally gets its MD5
(the customary genome fingerprint), computed in the same pass. Files are read in 8 MiB blocks, so a multi-GB
genome or bigWig costs one sequential read. Why BLAKE3: 3.4 GB/s per core on this project's CPU machine, against
0.64 for BLAKE2b (which stores built before it record, as ``"blake2b128:<hex>"``: :func:`checksum_matches`
verifies a recorded checksum with its own algorithm); hashing the 40k-locus benchmark's 250 MB of inputs took 0.68
of its build's ~3 CPU-s with BLAKE2b (and MD5 of the genome), ~0.3 with BLAKE3.

Two ids are derived from them:

- the *build key* (:func:`build_key`): what a build depends on — the source checksums and the build
  arguments. It decides whether a partial build may be resumed and names cached stores.
- the *content id* (:func:`content_id`): what a store holds — source checksums, layout and the loci. Two stores
  with the same content id hold the same arrays; models record it to name the data they were trained on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

#: algorithm of the file checksums of new stores
CHECKSUM_ALGORITHM = "blake3"
#: algorithm of content ids and build keys (small inputs: the speed of the hash does not matter)
CONTENT_ID_ALGORITHM = "blake2b128"
_BLOCK = 8 << 20


def _blake2b() -> Any:
    return hashlib.blake2b(digest_size=16)


def _blake3() -> Any:
    import blake3

    return blake3.blake3()


#: algorithm name -> new digest object, for every algorithm a store may record
FILE_DIGESTS = {"blake3": _blake3, "blake2b128": _blake2b}


def file_checksum(path: str | Path, *, md5: bool = False, algorithm: str = CHECKSUM_ALGORITHM) -> dict[str, Any]:
    """``{"size", "checksum"}`` (+ ``"md5"`` when asked) of a file, in one sequential read; ``"checksum"`` is
    ``"<algorithm>:<hex>"`` (:data:`FILE_DIGESTS`)."""
    digests = {"checksum": FILE_DIGESTS[algorithm]()}
    if md5:
        digests["md5"] = hashlib.md5(usedforsecurity=False)
    buffer = bytearray(_BLOCK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            for digest in digests.values():
                digest.update(view[:n])
    result: dict[str, Any] = {"size": os.path.getsize(path)}
    result["checksum"] = f"{algorithm}:{digests['checksum'].hexdigest()}"
    if md5:
        result["md5"] = digests["md5"].hexdigest()
    return result


def checksum_algorithm(recorded: str) -> str:
    """The algorithm a recorded ``"<algorithm>:<hex>"`` checksum names (one of :data:`FILE_DIGESTS`, or not)."""
    return recorded.split(":", 1)[0]


def checksum_matches(path: str | Path, recorded: str) -> bool:
    """Whether a file's checksum, computed with the algorithm ``recorded`` names (its prefix), equals
    ``recorded`` (False for an algorithm this version does not know)."""
    algorithm = checksum_algorithm(recorded)
    return algorithm in FILE_DIGESTS and file_checksum(path, algorithm=algorithm)["checksum"] == recorded


#: the user's checksum cache file (``bpnetz build`` uses it): a path, or ``off`` to hash every input every time;
#: default ``~/.cache/bpnetz/checksums.json``
CACHE_ENV = "BPNETZ_CHECKSUM_CACHE"
#: a file last changed less than this many seconds before its hashing began is hashed again next time rather than
#: remembered (see :class:`ChecksumCache`)
SETTLED_SECONDS = 2.0
#: entries a cache file keeps (the oldest are dropped): ~150 bytes each
MAX_ENTRIES = 10_000


def user_cache_path() -> Path | None:
    """The user's checksum cache file (:data:`CACHE_ENV`), or None when it is switched off."""
    value = os.environ.get(CACHE_ENV)
    if value is None:
        try:
            return Path.home() / ".cache" / "bpnetz" / "checksums.json"
        except (RuntimeError, KeyError):  # no HOME and no passwd entry: nowhere to remember
            return None
    return None if value.strip().lower() in ("", "off", "0", "no", "none") else Path(value)


def _valid_entry(entry: Any) -> bool:
    """Whether a loaded cache entry has what :func:`file_checksum` returns (a damaged one is dropped)."""
    return (isinstance(entry, dict) and isinstance(entry.get("size"), int) and isinstance(entry.get("checksum"), str)
            and isinstance(entry.get("md5", ""), str))


def _stat_key(path: Path, stat: os.stat_result) -> str:
    return f"{path}|{stat.st_dev}|{stat.st_ino}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}"


class ChecksumCache:
    """File checksums remembered in a JSON file, so unchanged files are not re-read: the store cache checks the same
    multi-GB inputs on every command, and an atlas builds hundreds of stores against one genome (hashing a 3 GB
    genome, BLAKE3 and MD5, takes ~5.5 CPU-s).
    Safe to call from several threads; concurrent processes may drop each other's new entries (rewritten whole,
    atomically), which only costs a later re-hash.

    A file is the same file while its device, inode, size, modification time and change time are. The change time
    cannot be set back (``touch -d`` and ``rsync -t`` set the modification time only), and any write updates it.
    Timestamps advance in clock ticks (~4 ms), so a file written twice within one tick, same size, would look
    unchanged: a result is remembered only when the file had not changed for :data:`SETTLED_SECONDS` before hashing
    began and did not change while it was hashed (git's "racy clean" rule). Failing to save the file (read-only
    or full disk) only loses the remembering.
    """

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        if self.path is not None:
            try:
                loaded = json.loads(self.path.read_text()) if self.path.is_file() else {}
            except (OSError, ValueError):  # unreadable or damaged: start empty (it is rewritten whole)
                loaded = {}
            self._entries = {key: entry for key, entry in loaded.items() if _valid_entry(entry)} \
                if isinstance(loaded, dict) else {}

    def checksum(self, path: str | Path, *, md5: bool = False) -> dict[str, Any]:
        """Like :func:`file_checksum`, reusing a remembered result for an unchanged file."""
        path = Path(path).resolve()
        before = path.stat()
        key = _stat_key(path, before)
        entry = self._entries.get(key)
        if (entry is not None and entry["checksum"].startswith(f"{CHECKSUM_ALGORITHM}:")
                and (not md5 or "md5" in entry)):  # an entry of an older version's algorithm is hashed again
            return dict(entry)
        began = time.time()
        entry = file_checksum(path, md5=md5)
        settled = began - max(before.st_mtime_ns, before.st_ctime_ns) / 1e9 >= SETTLED_SECONDS
        if settled and _stat_key(path, path.stat()) == key:
            with self._lock:  # the builder checksums its sources in several threads
                self._entries.pop(key, None)
                self._entries[key] = entry
                while len(self._entries) > MAX_ENTRIES:
                    del self._entries[next(iter(self._entries))]
                self._save()
        return dict(entry)

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self._entries))
            os.replace(tmp, self.path)
        except OSError:  # remembering is an optimisation: a read-only or full disk costs a re-hash next time
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


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
    return f"{CONTENT_ID_ALGORITHM}:{digest.hexdigest()}"
