"""Stage keys, output manifests and stage records: what makes a batch rerun skip work by content.

A stage's *key* hashes (BLAKE2b-128) the stage name, the bpnetz version, the checksums of its input files, its
parameters (lengths, seed, extra flags, the params/splits files' checksums) and the keys of the stages it reads
from. A stage's *record* (``<dir>/.batch/<stage>.json``) holds the key and the *output manifest*: every output
file's path (relative), size, mtime and checksum. It is written atomically, and only after the stage's command
succeeded, so a batch killed at any moment leaves either a complete record or none.

A rerun skips a stage when the recorded key equals the new one and the outputs verify: every recorded file
exists with its size, and its checksum is re-read only when its mtime changed (a copy that keeps mtimes costs
nothing; a touched but identical file still verifies). Input checksums are remembered by (path, size, mtime)
in ``<output-dir>/.batch/checksums.json`` (:class:`bpnetz.store.checksum.ChecksumCache`), so an unchanged rerun
re-reads no input: on the 2-core test machine a finished 4-experiment rerun takes seconds, most of it the
Dask cluster's start.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from bpnetz.files.atomic import write_text
from bpnetz.store.checksum import ChecksumCache, checksum_matches, file_checksum

RECORDS = ".batch"


def stage_key(stage: str, parts: dict[str, Any]) -> str:
    """The key of one stage run: a hash of the stage, the bpnetz version and ``parts`` (JSON-serialisable)."""
    from bpnetz import __version__

    text = json.dumps({"stage": stage, "bpnetz": __version__, "parts": parts}, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def input_checksums(paths: list[Path], cache_file: Path | None) -> dict[str, str]:
    """``{absolute path: checksum}`` of input files, remembered per unchanged file in ``cache_file``."""
    cache = ChecksumCache(cache_file)
    return {str(p): cache.checksum(p)["checksum"] for p in paths}


def scan_outputs(root: Path, outputs: list[str]) -> dict[str, dict[str, Any]]:
    """Output manifest of the files (or every file under the folders) ``outputs``, relative to ``root``."""
    manifest: dict[str, dict[str, Any]] = {}
    for name in outputs:
        top = root / name
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            stat = path.stat()
            manifest[str(path.relative_to(root))] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                                     "checksum": file_checksum(path)["checksum"]}
    return manifest


def outputs_verify(root: Path, manifest: dict[str, dict[str, Any]]) -> bool:
    """Whether every file of ``manifest`` is under ``root`` with its size and (if its mtime moved) checksum."""
    for name, entry in manifest.items():
        path = root / name
        try:
            stat = path.stat()
        except OSError:
            return False
        if stat.st_size != entry["size"]:
            return False
        if stat.st_mtime_ns != entry["mtime_ns"] and not checksum_matches(path, entry["checksum"]):
            return False
    return bool(manifest)


def record_path(root: Path, stage: str, kind: str = "json") -> Path:
    """``<root>/.batch/<stage>.<kind>``: kind ``json`` (done), ``failed.json`` or ``running``."""
    return root / RECORDS / f"{stage}.{kind}"


def read_json(path: Path) -> dict[str, Any] | None:
    """A record's content, or None when absent or unreadable (a record is never half-written)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_record(root: Path, stage: str, record: dict[str, Any]) -> None:
    """The stage's success record (atomic), clearing its failure and running markers."""
    write_text(record_path(root, stage), json.dumps(record, indent=1) + "\n")
    record_path(root, stage, "failed.json").unlink(missing_ok=True)
    record_path(root, stage, "running").unlink(missing_ok=True)


def write_failure(root: Path, stage: str, key: str, error: str, log: Path | None) -> None:
    """The stage's failure record: its one-paragraph error and the log's path (atomic)."""
    failure = {"stage": stage, "key": key, "error": error, "log": str(log) if log else None,
               "finished": time.time()}
    write_text(record_path(root, stage, "failed.json"), json.dumps(failure, indent=1) + "\n")
    record_path(root, stage, "running").unlink(missing_ok=True)


def mark_running(root: Path, stage: str, worker: str) -> None:
    """A marker read by ``bpnetz batch status`` while the stage runs."""
    write_text(record_path(root, stage, "running"),
               json.dumps({"started": time.time(), "worker": worker, "pid": os.getpid()}) + "\n")
