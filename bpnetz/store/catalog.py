"""The catalog: the stores under one root (a local directory or a bucket prefix), as a table.

``bpnetz store list ROOT`` reads only each store's root ``zarr.json`` (its ``bpnetz`` attribute holds everything
listed) and, at a URL, its commit marker: listing never reads an array. A store at a URL without a commit marker
(a build in progress or interrupted) is not listed as a store; the table's last line counts them.
``bpnetz build --catalog ROOT`` names each store by its build key (``store-<key>.zarr``, see
``bpnetz.build.builder.find_or_build_store``), so the same inputs find the same store and changed inputs get a new
one beside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bpnetz.errors import InputError
from bpnetz.files.remote import is_url, join, read_object
from bpnetz.store import schema

COLUMNS = ("name", "tasks", "genome checksum", "input", "output", "loci", "bytes", "created", "bpnetz")


@dataclass
class Entry:
    """One store of a catalog."""

    name: str
    meta: dict[str, Any]
    bytes: int

    def row(self) -> tuple[str, ...]:
        lay = self.meta.get("layout", {})
        genome = (self.meta.get("genome") or {}).get("checksum") or "?"
        return (self.name, ",".join(lay.get("tasks", [])), str(genome)[:16], str(lay.get("input_len", "?")),
                str(lay.get("output_len", "?")), f"{int(self.meta.get('n_loci', 0)):,}", f"{self.bytes:,}",
                str(self.meta.get("created", "?")), str(self.meta.get("bpnetz_version", "?")))


def _attributes(zarr_json: bytes | None) -> dict[str, Any] | None:
    try:
        node = json.loads(zarr_json) if zarr_json is not None else None
    except ValueError:
        return None
    if not isinstance(node, dict) or node.get("node_type") != "group":
        return None
    return (node.get("attributes") or {}).get(schema.ATTR_KEY)


def _local_entries(root: Path) -> tuple[list[Entry], int]:
    entries = []
    for child in sorted(root.iterdir()):
        meta = _attributes((child / "zarr.json").read_bytes()) if (child / "zarr.json").is_file() else None
        if meta is not None:
            size = sum(f.stat().st_size for f in child.rglob("*") if f.is_file())
            entries.append(Entry(child.name, meta, size))
    return entries, 0


def _remote_entries(root: str) -> tuple[list[Entry], int]:
    from bpnetz.files.remote import list_children

    entries, uncommitted = [], 0
    for name in list_children(root):
        url = str(join(root, name))
        meta = _attributes(read_object(str(join(url, "zarr.json"))))
        if meta is None:
            continue
        record = schema.commit_record(url)
        if record is None:
            uncommitted += 1
            continue
        entries.append(Entry(name, meta, int(record.get("bytes") or 0)))
    return entries, uncommitted


def list_stores(root: str | Path) -> tuple[list[Entry], int]:
    """The stores under ``root`` and the number of uncommitted ones (a URL root only)."""
    if is_url(root):
        return _remote_entries(str(root).rstrip("/"))
    if not Path(root).is_dir():
        raise InputError("is not a directory.", path=root, fix="Pass the directory (or bucket prefix) holding stores.")
    return _local_entries(Path(root))


def format_table(entries: list[Entry], uncommitted: int = 0) -> str:
    """The catalog as aligned columns, one store a line."""
    rows = [COLUMNS, *(entry.row() for entry in entries)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.append(f"{len(entries)} store(s)" + (f"; {uncommitted} uncommitted (being built or interrupted)"
                                                if uncommitted else ""))
    return "\n".join(lines)
