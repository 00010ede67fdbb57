"""Draw one image of the known-answer benchmark: a chest-like picture whose findings show their side,
size and severity. Coordinates are fractions of the image; the patient's right is on the image's left.

Every pattern is a few vectorised numpy expressions on an S x S grid (a 32 px image takes ~0.2 ms), so
ten thousand images take seconds. Severity is the pattern's contrast, size its extent, side the
hemithorax; position, body habitus, exposure and noise vary per image so that a pixel lookup cannot
read the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AMPLITUDE = {"mild": 0.16, "moderate": 0.3, "severe": 0.48}
EXTENT = {"small": 1.0, "large": 1.8}


@dataclass(frozen=True)
class ProofFinding:
    """One positive finding of a proof study, as the generator draws it and the texts tell it."""

    name: str
    side: str
    size: str
    severity: str


class _Grid:
    def __init__(self, size: int) -> None:
        self.x = np.linspace(0, 1, size, dtype=np.float32)[None, :]
        self.y = np.linspace(0, 1, size, dtype=np.float32)[:, None]
        self.size = size

    def ellipse(self, cx: float, cy: float, a: float, b: float, edge: float = 0.04) -> np.ndarray:
        depth = 1.0 - np.sqrt(((self.x - cx) / a) ** 2 + ((self.y - cy) / b) ** 2)
        return np.clip(0.5 + depth * min(a, b) / edge, 0.0, 1.0)

    def blob(self, cx: float, cy: float, radius: float) -> np.ndarray:
        return np.exp(-(((self.x - cx) ** 2 + (self.y - cy) ** 2) / radius**2) * 1.5)

    def noise(self, rng: np.random.Generator, cells: int) -> np.ndarray:
        """Smooth noise in about [-1, 1]: a coarse random grid, bilinearly upsampled."""
        grid = rng.standard_normal((cells, cells)).astype(np.float32)
        positions = np.linspace(0, cells - 1, self.size)
        low = np.floor(positions).astype(int).clip(0, cells - 2)
        t = (positions - low).astype(np.float32)
        rows = grid[low] * (1 - t)[:, None] + grid[low + 1] * t[:, None]
        return (rows[:, low] * (1 - t)[None, :] + rows[:, low + 1] * t[None, :]) * 0.7


def render(rng: np.random.Generator, findings: tuple[ProofFinding, ...], size: int) -> np.ndarray:
    """One uint8 [size, size] image of a study with these findings."""
    g = _Grid(size)
    cx = 0.5 + rng.normal(0, 0.02)
    habitus = rng.uniform(0.92, 1.06)
    img = 0.1 + 0.3 * g.ellipse(cx, 0.55, 0.45 * habitus, 0.52)
    lungs = {}
    for side, sign in (("right", -1), ("left", 1)):
        lung = (cx + sign * 0.2 * habitus, 0.47 + rng.normal(0, 0.015), 0.15 * habitus, 0.3, sign)
        lungs[side] = lung
        img = img - 0.22 * g.ellipse(*lung[:4])
    img = img + 0.25 * np.clip(0.5 + (0.06 - np.abs(g.x - cx)) / 0.02, 0, 1) * (g.y > 0.12) * (g.y < 0.82)
    thorax = np.clip((np.abs(g.x - cx) - 0.07) / 0.03, 0, 1) * g.ellipse(cx, 0.48, 0.4 * habitus, 0.42)
    for i in range(5):
        rib = 0.2 + i * 0.12 + 0.08 * ((g.x - cx) / 0.4) ** 2
        img = img + 0.07 * np.exp(-(((g.y - rib) / 0.02) ** 2)) * thorax
    for finding in findings:
        img = img + _finding(g, rng, finding, lungs[finding.side])
    img = img + 0.04 * g.noise(rng, 6) + rng.normal(0, 0.03, img.shape)
    img = (img - 0.3) * rng.uniform(0.85, 1.15) + 0.3 + rng.uniform(-0.04, 0.04)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _finding(g: _Grid, rng: np.random.Generator, f: ProofFinding, lung: tuple) -> np.ndarray:
    """The density a finding adds (negative: darker) inside its side's lung or chest wall."""
    lx, ly, a, b, sign = lung
    amp, extent = AMPLITUDE[f.severity], EXTENT[f.size]
    inside = g.ellipse(lx, ly, a, b)
    if f.name == "nodule":
        return amp * g.blob(lx + rng.uniform(-0.4, 0.4) * a, ly - rng.uniform(0.05, 0.5) * b, 0.035 * extent)
    if f.name == "consolidation":
        patch = g.blob(lx + rng.uniform(-0.3, 0.3) * a, ly + rng.uniform(0.1, 0.4) * b, 0.06 * extent)
        return amp * patch * np.clip(0.6 + 0.5 * g.noise(rng, 8), 0, 1.2) * inside
    if f.name == "effusion":
        level = ly + b - 0.08 * extent - 0.06 * np.abs(g.x - lx) * sign * (g.x - lx > 0)
        return amp * np.clip((g.y - level) / 0.03, 0, 1) * inside
    if f.name == "pneumothorax":
        rim = np.clip((sign * (g.x - lx) - (a - 0.05 * extent)) / 0.02, 0, 1) * (g.y < ly + 0.1)
        return -0.8 * amp * rim * inside
    wall_x = lx + sign * (a + 0.03)
    y = ly + rng.uniform(-0.6, 0.6) * b
    if f.name == "fracture":
        band = np.exp(-(((g.x - wall_x) / 0.018) ** 2)) * (np.abs(g.y - y) < 0.04 * extent)
        return amp * band - 0.5 * amp * g.blob(wall_x, y, 0.02)
    return -amp * g.blob(wall_x, y, 0.03 * extent) + 0.5 * amp * (g.blob(wall_x, y, 0.05 * extent) > 0.5)
