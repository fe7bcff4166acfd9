"""Kept for old imports: this module is ``irgan.training.fast_mf`` (one module object under both names)."""
import sys

from irgan.training import fast_mf as _module

sys.modules[__name__] = _module
