"""Names taken from input files become file names only after validation; output paths stay under their directory.

A fold key of splits.json, a model or task name, a BED name column, a motif pattern name or any other JSON value
ends up in a file or directory name. Without a check, a fold key ``/../../x`` made ``bpnetz train`` write (and
replace) a directory outside ``--output-dir``. :func:`safe_name` accepts only ``[A-Za-z0-9._+-]`` (``+`` for
strand names such as ``task0_+``), not starting with a dot (no hidden files, no ``.`` or ``..``), at most
:data:`MAX_NAME_LENGTH` characters (file systems allow 255 bytes; room is left for suffixes such as ``.partial`` or
``_split000.profile.bw``), and raises an :class:`~bpnetz.errors.InputError` naming where the value came from otherwise.
:func:`path_under` joins names to an output directory and checks that the resolved result (symbolic links followed)
still lies under it.
"""

from __future__ import annotations

import re
from pathlib import Path

from bpnetz.errors import InputError

MAX_NAME_LENGTH = 128
_SAFE = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*")


def safe_name(value: object, *, what: str, source: object | None = None) -> str:
    """``value`` as a string when it is safe as one path component, else an InputError.

    ``what`` says what the value is ("fold key", "task name", ...) and ``source`` where it came from (a file,
    optionally with its key), so the message names both.
    """
    name = str(value)
    if _SAFE.fullmatch(name) and len(name) <= MAX_NAME_LENGTH:
        return name
    if len(name) > MAX_NAME_LENGTH:
        reason = f"is {len(name)} characters long (at most {MAX_NAME_LENGTH})"
    elif name.startswith("."):
        reason = "starts with '.'"
    else:
        bad = sorted({c for c in name if not re.fullmatch(r"[A-Za-z0-9._+-]", c)})
        reason = f"holds {', '.join(repr(c) for c in bad)}" if bad else "is empty"
    raise InputError(f"the {what} {name[:80]!r} {reason}; it becomes a file name, which may hold only letters, "
                     "digits, '.', '_', '+' and '-' (not first '.').", path=source,
                     fix=f"Rename the {what} to such a name.")


def path_under(directory: str | Path, *names: str) -> Path:
    """``directory / names...`` (as given), checked to resolve (links followed) to a path inside ``directory``."""
    base = Path(directory).resolve()
    target = base.joinpath(*names).resolve()
    if target == base or base not in target.parents:
        raise InputError(f"the output path {'/'.join(names)!r} would lie outside the output directory.",
                         path=directory, fix="Use names without '/', '..' or links that point elsewhere.")
    return Path(directory).joinpath(*names)
