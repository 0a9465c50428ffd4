"""Atomic file outputs: written under a temporary name next to the target, then renamed into place.

A reader never sees half a file, and a failed write leaves the previous file untouched. An OSError that names
no file (a write() into a full disk) is re-raised naming the output, so the user learns which file failed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (not yet created); rename it onto ``path`` when the block succeeds.

    The parent directory is created. On error the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename is None:  # a failed write() names no file: name the output
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically; returns the path."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return Path(path)
