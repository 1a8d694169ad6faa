"""Training methods: the baseline, HKD's student, and the annotation-guided losses. ``METHODS``
(declared in ``hkd.config.choices``) imports each one when its name is first used."""

from hkd.config.choices import METHODS
from hkd.methods.base import Method

__all__ = ["METHODS", "Method"]
