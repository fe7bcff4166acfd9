"""Kept for old imports: this module is ``irgan.training.als`` (one module object under both names)."""
import sys

from irgan.training import als as _module

sys.modules[__name__] = _module
