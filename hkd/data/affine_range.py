"""How far a policy's random affine goes (the ``augment.degrees / translate / scale`` keys)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AffineRange:
    """How far the random affine of the ``basic``, ``strong`` and ``pneuknownet`` policies goes."""

    degrees: float = 10.0    # rotation range (degrees)
    translate: float = 0.08  # shift range (fraction of the image)
    scale: float = 0.1       # zoom range (1 +- scale)
