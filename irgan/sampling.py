"""Kept for old imports: this module is ``irgan.training.sampling`` (one module object under both names)."""
import sys

from irgan.training import sampling as _module

sys.modules[__name__] = _module
