"""Exceptions shared across irgan, and how an exception becomes the one line a user reads."""
from __future__ import annotations


class DataError(ValueError):
    """Bad, missing or unreadable input data; the message names the file and line where known."""


def first_line(err: BaseException) -> str:
    """The first non-blank line of ``err``'s message, or its class name when it has none."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def one_line(err: BaseException) -> str:
    """What a command prints after ``error:``: ``first_line``, an OSError as 'reason: path'."""
    if isinstance(err, OSError) and err.strerror and not isinstance(err, (FileExistsError, FileNotFoundError)):
        where = f": {err.filename}" if err.filename else ""
        return f"{err.strerror}{where}"
    return first_line(err)
