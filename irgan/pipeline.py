"""Kept for old imports: this module is ``irgan.adversarial.irgan.recipe`` (one module object under both names)."""
import sys

from irgan.adversarial.irgan import recipe as _module

sys.modules[__name__] = _module
