"""The ``irgan`` command: ``irgan train ...`` (as ``python -m irgan.train``), ``irgan plot RUN_DIR``,
``irgan compare ...`` and ``irgan --version``."""
from __future__ import annotations

import sys
from typing import Sequence

USAGE = """usage: irgan COMMAND [ARGS]  (irgan --version prints the version)

commands:
  train   train IRGAN (default), CFGAN or APR (--model), select, test and save a run   (irgan train --help)
  plot    draw a run's learning curves as PNGs                  (irgan plot --help)
  compare tune, refit and test models side by side, with paired tests   (irgan compare --help)"""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from irgan import __version__
        print(f"irgan {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "train":
        from irgan.train import main as train
        return train(rest, prog="irgan train")
    if command == "compare":
        from irgan.compare import main as compare
        return compare(rest, prog="irgan compare")
    if command == "plot":
        from irgan.plot import main as plot
        return plot(rest, prog="irgan plot")
    print(f"irgan: unknown command {command!r}\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
