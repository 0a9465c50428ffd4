"""One writer at a time: an exclusive lock file beside each output (a store, a model or output directory).

:func:`exclusive_lock` creates ``.<name>.lock`` next to the target with ``O_CREAT | O_EXCL`` (atomic on local file
systems and NFSv3+) and writes its holder into it: pid, host, command line, start time and a random token. A second
writer either fails at once with an :class:`~bpnetz.errors.InputError` naming the holder and its age, or (``wait``)
polls until the lock is free (the compat store cache: the second job then finds the store the first one built).

Stale locks: a holder on this host whose pid no longer runs (a killed job) is taken over with a notice; the
take-over is serialised by an ``fcntl`` lock on the directory holding the lock file and re-reads the lock file
under it, so two processes never both remove a stale lock and then each other's fresh one. A holder on another host
cannot be checked: its host, pid and age are reported and the user decides. A lock file still empty (its writer between
create and write) is read again for up to :data:`EMPTY_GRACE_S` seconds, then treated as stale.

Re-entrant within one process (``find_or_build_store`` locks the cache entry, then the build locks the same path).
The lock is removed on exit only when it still holds this process's token.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from bpnetz.errors import InputError, notice

EMPTY_GRACE_S = 5.0
POLL_S = 0.2
#: lock file -> (pid, token, depth) of the locks this process holds
_HELD: dict[str, tuple[int, str, int]] = {}


def lock_path(target: str | Path) -> Path:
    """The lock file of ``target``: ``.<name>.lock`` in the same directory."""
    target = Path(target).absolute()
    return target.with_name(f".{target.name}.lock")


def _holder_text(holder: dict) -> str:
    started = holder.get("started", "?")
    try:
        age = time.time() - datetime.fromisoformat(started).timestamp()
        age_text = f", running for {age:.0f} s"
    except (TypeError, ValueError):
        age_text = ""
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} (command: {holder.get('command', '?')}; "
            f"started {started}{age_text})")


def _read_holder(path: Path) -> dict | None:
    """The holder written in a lock file; {} while it is still empty or unreadable, None when it is gone."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _is_stale(path: Path, holder: dict) -> bool:
    if not holder:
        try:
            return time.time() - path.stat().st_mtime > EMPTY_GRACE_S
        except FileNotFoundError:
            return False
    if holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError, TypeError):
        return False
    return False


def _take_over_if_stale(path: Path, seen: dict) -> bool:
    """Remove the lock when it still holds the same stale holder (under the guard); True when removed."""
    guard = os.open(path.parent, os.O_RDONLY)  # flock on the directory itself: no extra file is left behind
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)
        current = _read_holder(path)
        if current is None or current != seen or not _is_stale(path, current):
            return False
        path.unlink()
    finally:
        os.close(guard)
    notice(f"took over the stale lock {path} of {_holder_text(seen) if seen else 'an unfinished writer'} "
           "(that process no longer runs).")
    return True


def _try_create(path: Path, token: str, command: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "token": token,
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(holder))
        handle.flush()
        os.fsync(handle.fileno())
    return True


def _acquire(path: Path, target: Path, what: str, wait: bool) -> str:
    token, command = uuid.uuid4().hex, " ".join(sys.argv) or "python"
    announced = False
    while True:
        if _try_create(path, token, command):
            return token
        holder = _read_holder(path)
        if holder is None or _take_over_if_stale(path, holder):
            continue
        if holder == {} or wait:
            if wait and not announced and holder:
                notice(f"waiting for {_holder_text(holder)}, which is writing {what} {target}.")
                announced = True
            time.sleep(POLL_S)
            continue
        raise InputError(f"another bpnetz process is writing this {what}: {_holder_text(holder)}.", path=target,
                         fix=f"Wait for it to finish or choose another output. If that process no longer runs, "
                             f"delete the lock file {path}.")


@contextmanager
def exclusive_lock(target: str | Path, *, what: str = "output", wait: bool = False) -> Iterator[Path]:
    """Hold the lock of ``target`` for the block (see the module docstring); yields the lock file's path."""
    path = lock_path(target)
    key = str(path)
    held = _HELD.get(key)
    if held is not None and held[0] == os.getpid():
        _HELD[key] = (held[0], held[1], held[2] + 1)
        try:
            yield path
        finally:
            pid, token, depth = _HELD[key]
            _HELD[key] = (pid, token, depth - 1)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    token = _acquire(path, Path(target), what, wait)
    _HELD[key] = (os.getpid(), token, 1)
    try:
        yield path
    finally:
        del _HELD[key]
        holder = _read_holder(path)
        if holder and holder.get("token") == token:
            path.unlink(missing_ok=True)
