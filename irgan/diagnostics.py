"""Kept for old imports: this module is ``irgan.adversarial.irgan.diagnostics`` (one module object under both names)."""
import sys

from irgan.adversarial.irgan import diagnostics as _module

sys.modules[__name__] = _module
