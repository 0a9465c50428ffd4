"""Opening HDF5 inputs (score, prediction and modisco files) with a clear error instead of h5py's traceback."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bpnetz.errors import InputError


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
