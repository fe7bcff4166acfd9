"""Exceptions shared across irgan."""
from __future__ import annotations


class DataError(ValueError):
    """Bad, missing or unreadable input data; the message names the file and line where known."""
