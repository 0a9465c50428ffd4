"""Atomic outputs: a file, or a whole output directory, is written under a temporary name beside its target and
renamed into place.

A reader never sees half a file, and a failed write leaves the previous file untouched. An OSError that names
no file (a write() into a full disk) is re-raised naming the output, so the user learns which file failed. Whole
output directories (:func:`atomic_directory`: predictions, contribution scores, modisco and hit-calling results,
averages, each trained model) are written into a fresh temporary directory, fsynced, then swapped in by two renames
(the previous output renamed aside, the new one renamed in, the old one removed): a failed or killed run leaves the
previous output intact, never a mix of two runs' files (a modisco rerun used to leave the previous run's logos
beside the new ones). Every such directory holds :data:`MARKER`; only a directory holding it (or a bpnetz store) is ever
replaced.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from bpnetz.errors import InputError, notice


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


# ------------------------------------------------------------------------------------------ whole directories

#: the marker file bpnetz writes into every output directory it creates (what ``--overwrite`` may replace)
MARKER = ".bpnetz-output.json"
_TMP_TAG, _OLD_TAG = ".bpnetz-tmp-", ".bpnetz-old-"


def write_marker(directory: str | Path, command: str | None = None) -> Path:
    """Write :data:`MARKER` into ``directory``: the command that made it and when."""
    text = json.dumps({"command": command or " ".join(sys.argv), "pid": os.getpid(),
                       "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}, indent=1)
    return write_text(Path(directory) / MARKER, text + "\n")


def has_marker(directory: str | Path) -> bool:
    """Whether ``directory`` is an output directory written by bpnetz (it holds :data:`MARKER`)."""
    return (Path(directory) / MARKER).is_file()


def check_replaceable(target: str | Path, *, what: str = "output directory") -> None:
    """Refuse to replace ``target`` unless it is absent, an empty directory, or a bpnetz output (marker)."""
    target = Path(target)
    if not target.exists() and not target.is_symlink():
        return
    if target.is_dir() and not target.is_symlink() and (has_marker(target) or not any(target.iterdir())):
        return
    kind = "a file" if target.is_file() else "a directory bpnetz did not write (no " + MARKER + ")"
    raise InputError(f"is {kind}; bpnetz replaces only {what}s it made, never other data.", path=target,
                     fix="Choose another output path, or move that data away first.")


def _fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (so the swap never exposes unwritten data after a crash)."""
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems do not fsync directories
        pass
    finally:
        os.close(fd)


def clean_leftovers(target: str | Path) -> list[str]:
    """Remove the temporaries a killed run left beside ``target``; returns one notice per leftover.

    ``.<name>.bpnetz-tmp-*`` (a run killed while writing) are removed. ``.<name>.bpnetz-old-*`` (a run killed
    during its swap) are removed when ``target`` exists, else renamed back to ``target``: the previous output.
    Call it only while holding the target's lock (:func:`bpnetz.files.lock.exclusive_lock`).
    """
    target = Path(target).absolute()
    notices = []
    for leftover in sorted(target.parent.glob(f".{target.name}{_TMP_TAG}*")):
        shutil.rmtree(leftover, ignore_errors=True)
        notices.append(f"removed {leftover}, the unfinished output of an earlier run that was stopped.")
    for leftover in sorted(target.parent.glob(f".{target.name}{_OLD_TAG}*")):
        if target.exists():
            shutil.rmtree(leftover, ignore_errors=True)
            notices.append(f"removed {leftover}, a replaced output an earlier run left behind.")
        else:
            os.replace(leftover, target)
            notices.append(f"restored {target} from {leftover}, left by an earlier run stopped while replacing it.")
    for message in notices:
        notice(message)
    return notices


def swap_in(new: Path, target: Path) -> None:
    """Rename ``new`` onto ``target``: an existing target is renamed aside first, then removed."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}{_OLD_TAG}{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
    os.replace(new, target)
    _fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_directory(target: str | Path, *, command: str | None = None) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``target``; on success swap it in as ``target``.

    The temporary gets the :data:`MARKER`, every file is fsynced, then :func:`swap_in` replaces the previous
    output. On error the temporary is removed and ``target`` is left as it was; a run killed outright leaves
    ``.<name>.bpnetz-tmp-*``, which the next run removes (:func:`clean_leftovers`). The caller holds the
    target's lock; ``target`` must be replaceable (:func:`check_replaceable`, checked here).
    """
    target = Path(target).absolute()
    if target.is_symlink():  # a link to the output directory: the directory it points to is replaced
        target = target.resolve()
    check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(target)
    tmp = target.with_name(f".{target.name}{_TMP_TAG}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
        write_marker(tmp, command)
        _fsync_tree(tmp)
        check_replaceable(target)
        swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def output_directory(target: str | Path, *, what: str = "output directory", command: str | None = None
                     ) -> Iterator[Path]:
    """:func:`atomic_directory` under the target's exclusive lock: the one way bpnetz writes an output directory.

    A second writer of the same target fails at once naming the first (:func:`bpnetz.files.lock.exclusive_lock`).
    """
    from bpnetz.files.lock import exclusive_lock

    target = Path(target).absolute()
    if target.is_symlink():  # one lock per real directory, whichever link leads to it
        target = target.resolve()
    with exclusive_lock(target, what=what), atomic_directory(target, command=command) as tmp:
        yield tmp


def relocated(path: str | Path, tmp: Path, target: str | Path) -> Path:
    """Where ``path``, written under ``tmp`` by :func:`atomic_directory`, lies once swapped in as ``target``."""
    return Path(target) / Path(path).relative_to(tmp)
