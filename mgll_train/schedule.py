"""The learning-rate schedule: linear warmup, then cosine decay, and what a resume that moves the end does.

A resumed run that keeps `--max-steps` continues the schedule exactly. One that changes it cannot keep
the original curve (its end moved), so it says what it does instead, and never jumps:
- the run had not finished: the rest of the cosine is re-planned from the learning rate it had reached
  to the minimum at the new end (continuous, only the slope changes);
- the run had finished (the cosine already reached its minimum): extending it starts a new cosine
  cycle from the peak to the minimum over the added steps (a warm restart, as in SGDR; no warmup),
  since continuing at the minimum would not train.
"""

from __future__ import annotations

import math


class WarmupCosine:
    """lr factor for LambdaLR: linear warmup to 1 over `warmup` steps, then a cosine from `peak` at step
    `start` (default: the end of warmup) down to `min_ratio` at `total`, flat after it.

    A class rather than a closure so LambdaLR's state_dict carries its settings (a resumed run restores
    a re-planned schedule too).
    """

    def __init__(
        self, warmup: int, total: int, min_ratio: float = 0.0, start: int | None = None, peak: float = 1.0
    ) -> None:
        self.warmup = warmup
        self.total = total
        self.min_ratio = min_ratio
        self.start = warmup if start is None else start
        self.peak = peak

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, max(0, step - self.start) / max(1, self.total - self.start))
        return self.min_ratio + (self.peak - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def replan(self, step: int, total: int) -> str:
        """Move the end to `total` at `step` (see the module docstring); a one-line account of what changed."""
        old_total = self.total
        if total == old_total:
            return ""
        if step < self.warmup:
            self.total = total
            return f"the schedule's end moved from step {old_total} to {total}; warmup continues, then the cosine"
        if step >= old_total:
            self.start, self.peak, self.total = step, 1.0, total
            return (
                f"the run's cosine ended at step {old_total}; steps {step + 1}-{total} follow a new cosine from "
                f"the peak lr to the minimum (a warm restart)"
            )
        self.start, self.peak, self.total = step, self(step), total
        return (
            f"--max-steps moved the end from step {old_total} to {total}; the cosine continues from the lr "
            f"reached at step {step} (factor {self.peak:.3f} of the peak) to the minimum at step {total}"
        )
