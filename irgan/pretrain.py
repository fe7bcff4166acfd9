"""Kept for old imports: this module is ``irgan.training.bpr`` (one module object under both names)."""
import sys

from irgan.training import bpr as _module

sys.modules[__name__] = _module
