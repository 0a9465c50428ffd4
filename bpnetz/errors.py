"""User-facing errors: one exception type whose message is a complete, actionable paragraph.

Library code raises :class:`InputError` for anything the user can fix (a missing file, a bad key,
mismatched lengths); the CLI prints the message alone, without a traceback, and exits with status 2.
"""

from __future__ import annotations


class InputError(Exception):
    """Bad input: the message names the file (and line or key) and says how to fix it."""

    def __init__(self, message: str, *, path: object | None = None, fix: str | None = None):
        parts = [f"{path}: {message}" if path is not None else message]
        if fix:
            parts.append(fix)
        super().__init__(" ".join(parts))


def notice(message: str) -> None:
    """A one-line notice on stderr: something was assumed or skipped, and the command goes on."""
    import sys

    print(f"notice: {message}", file=sys.stderr)
