"""Kept for old imports: this module is ``irgan.training.updates`` (one module object under both names)."""
import sys

from irgan.training import updates as _module

sys.modules[__name__] = _module
