"""HDF5 files: opening inputs (score, prediction and modisco files) with a clear error instead of h5py's
traceback, and writing outputs so that a full or read-only disk is an ordinary OSError.

Measured (h5py 3, HDF5 1.14, a 1 MiB tmpfs left with 8 KiB free): HDF5 writing straight into a file on a full
file system reports ENOSPC only as "Exception ignored" while datasets are flushed, and closing the file then
crashes the process (SIGSEGV, exit 139, `bpnetz predict` writing predictions.h5). :func:`h5_output` therefore
builds the file in memory and writes its bytes with one checked Python write (atomically, via a temporary name).
The arrays written are already in memory, so the compressed image at most doubles the peak.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bpnetz.errors import InputError
from bpnetz.files.atomic import atomic_output


def open_h5(path: str | os.PathLike, what: str, fix: str) -> Any:
    """``h5py.File(path, "r")``; a missing or unreadable file is an :class:`InputError` naming ``what`` it should
    be and the ``fix``."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found: the file does not exist.", path=path, fix=fix)
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"not a readable HDF5 file ({err}).", path=path, fix=fix) from err


@contextmanager
def h5_image_output(path: str | os.PathLike) -> Iterator[Any]:
    """Yield an in-memory file for an HDF5 writer (``h5py.File`` accepts it, also inside third-party code); once
    the block succeeds its bytes are written atomically to ``path``.

    A full disk, a read-only location or a permission error surfaces as the OSError of that write, naming
    ``path``, never as a crash inside HDF5; on error nothing is left behind.
    """
    import io

    image = io.BytesIO()
    yield image
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        handle.write(image.getbuffer())


@contextmanager
def h5_output(path: str | os.PathLike) -> Iterator[Any]:
    """Yield a writable ``h5py.File`` held in memory, written to ``path`` as :func:`h5_image_output` does."""
    import h5py

    with h5_image_output(path) as image, h5py.File(image, "w") as h5:
        yield h5
