"""Progress that reads well where it lands: tqdm bars in a terminal or notebook, nothing elsewhere.

Piped to a file, a tqdm bar writes one carriage-return frame per update (a default run made
147 KB of them); there the training loops log one line per outer epoch instead.
"""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from tqdm.auto import tqdm


def interactive() -> bool:
    """True when stderr is a terminal or the code runs in a Jupyter kernel (where tqdm draws a widget)."""
    if "ipykernel" in sys.modules:
        return True
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def bar(show: bool, **kwargs: Any) -> tqdm:
    """A tqdm bar, shown when ``show`` and the output is interactive; a silent one otherwise."""
    return tqdm(disable=not (show and interactive()), **kwargs)


@contextmanager
def logging_to_stderr(enabled: bool, level: int = logging.INFO) -> Iterator[None]:
    """While active (and ``enabled``), irgan's log records at ``level`` and above also go to stderr:
    what an estimator's ``verbose=True`` shows (one line per epoch) without configuring logging."""
    if not enabled:
        yield
        return
    logger = logging.getLogger("irgan")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    handler.setLevel(level)
    old_level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
