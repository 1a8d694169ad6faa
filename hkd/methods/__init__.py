"""Training methods: the baseline, HKD's student, and the annotation-guided losses. Every module of
this package is imported here, so a new method is one file that registers itself in ``METHODS``."""

from hkd.methods.base import METHODS, Method
from hkd.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = ["METHODS", "Method"]
