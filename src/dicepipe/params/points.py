"""`points`: the one vocabulary of prompt-point counts (sample, composite, encode)."""

from __future__ import annotations

from dataclasses import dataclass

from dicepipe.config import bounded


@dataclass(frozen=True)
class PointParams:
    """How many prompt points an example gets: k uniform in [min, max] (DICEPTION: 1-5).

    The one vocabulary of point counts: `sample.sa1b.points` (SA-1B stores `max` points per
    mask, drawn by `sampling.pixel_draw`), `composite.geometry.points` and `encode.points`.
    """

    min: int = bounded(1, lo=1, hi=5)
    max: int = bounded(5, lo=1, hi=5)

    def __post_init__(self) -> None:
        if self.min > self.max:
            raise ValueError(f"points.min ({self.min}) must not exceed points.max ({self.max})")
