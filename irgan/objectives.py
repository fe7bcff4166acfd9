"""Kept for old imports: this module is ``irgan.training.objectives`` (one module object under both names)."""
import sys

from irgan.training import objectives as _module

sys.modules[__name__] = _module
