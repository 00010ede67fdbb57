"""Synthetic chest radiographs whose visible patterns follow the study's findings.

The point is learnability, not realism: a model trained on the demo should be able to find an effusion
because the lung bases really are whiter, a cardiomegaly because the heart shadow really is wider. The
drawing works on a density map (0 = air/black, 1 = metal/white, MONOCHROME2 sense) built from a few
vectorised numpy shapes, so thousands of images take a minute rather than an hour.

Coordinates are fractions of the image (x left→right, y top→bottom). In a PA/AP view the patient's right
is on the image's left, as on a light box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from mgll_data.demo.findings import PlantedFinding

_SIZE_SCALE = {"small": 0.0, "moderate": 0.5, "large": 1.0}


@dataclass
class _Canvas:
    x: np.ndarray  # [1, W] column coordinates
    y: np.ndarray  # [H, 1] row coordinates
    rng: np.random.Generator

    @property
    def shape(self) -> tuple[int, int]:
        return self.y.shape[0], self.x.shape[1]


def _ramp(value: np.ndarray, edge: float) -> np.ndarray:
    """A soft step: 0 below -edge/2, 1 above +edge/2 — cheaper than a sigmoid and just as smooth-looking."""
    return np.clip(0.5 + value / edge, 0.0, 1.0)


def _ellipse_depth(c: _Canvas, cx: float, cy: float, a: float, b: float) -> np.ndarray:
    """1 at the centre, 0 on the rim, negative outside."""
    return 1.0 - np.sqrt(((c.x - cx) / a) ** 2 + ((c.y - cy) / b) ** 2)


def _ellipse(c: _Canvas, cx: float, cy: float, a: float, b: float, edge: float = 0.02) -> np.ndarray:
    return _ramp(_ellipse_depth(c, cx, cy, a, b) * min(a, b), edge)


def _smooth_noise(c: _Canvas, cells: int) -> np.ndarray:
    """Band-limited noise in about [-1, 1]: a small random grid upsampled bicubically."""
    height, width = c.shape
    grid = c.rng.standard_normal((cells, max(2, round(cells * width / height)))).astype(np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize((width, height), Image.BICUBIC)) * 0.7


def _segments(c: _Canvas, points: list[tuple[float, float]], width: float) -> np.ndarray:
    """A polyline of the given width (a tube, a wire), 1 on the line, fading to 0 at its edge."""
    aspect = c.shape[1] / c.shape[0]
    dist = np.full(c.shape, np.inf, dtype=np.float32)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        dx, dy = (x1 - x0) * aspect, y1 - y0
        t = ((c.x - x0) * aspect * dx + (c.y - y0) * dy) / max(dx * dx + dy * dy, 1e-9)
        t = np.clip(t, 0.0, 1.0)
        d = np.sqrt(((c.x - x0) * aspect - t * dx) ** 2 + (c.y - y0 - t * dy) ** 2)
        dist = np.minimum(dist, d)
    return _ramp(width - dist, width)


def _sides(finding: PlantedFinding) -> tuple[str, ...]:
    return ("right", "left") if finding.side == "bilateral" else (finding.side,)


@dataclass
class _Lung:
    cx: float
    cy: float
    a: float
    b: float
    dome: float
    lateral: int  # -1 when the lateral edge is towards the image's left
    mask: np.ndarray


def _random_point_in(c: _Canvas, lung: _Lung, y_range: tuple[float, float]) -> tuple[float, float]:
    for _ in range(20):
        px = lung.cx + c.rng.uniform(-0.7, 0.7) * lung.a
        py = c.rng.uniform(*y_range)
        if ((px - lung.cx) / lung.a) ** 2 + ((py - lung.cy) / lung.b) ** 2 < 0.6 and py < lung.dome - 0.03:
            return px, py
    return lung.cx, min(lung.cy, lung.dome - 0.08)


def _blob(c: _Canvas, px: float, py: float, radius: float, texture: np.ndarray | None = None) -> np.ndarray:
    aspect = c.shape[1] / c.shape[0]
    dist = np.sqrt(((c.x - px) * aspect) ** 2 + (c.y - py) ** 2) / radius
    blob = np.exp(-(dist**2) * 1.5)
    if texture is not None:
        blob = blob * np.clip(0.55 + 0.6 * texture, 0.0, 1.2)
    return blob


def draw_frontal(rng: np.random.Generator, findings: dict[str, PlantedFinding], shape: tuple[int, int],
                 view: str = "PA") -> np.ndarray:
    """A PA or AP chest radiograph as a float32 density map in [0, 1]."""
    height, width = shape
    c = _Canvas(x=np.linspace(0, 1, width, dtype=np.float32)[None, :],
                y=np.linspace(0, 1, height, dtype=np.float32)[:, None], rng=rng)
    cx = 0.5 + rng.normal(0, 0.012)
    habitus = rng.uniform(0.93, 1.05)
    img = np.full(shape, 0.05, dtype=np.float32)
    img += 0.30 * _ellipse(c, cx, 0.62, 0.47 * habitus, 0.66)
    img += 0.22 * _ellipse(c, cx, 0.0, 0.09, 0.14)

    lungs: dict[str, _Lung] = {}
    lung_mask = np.zeros(shape, dtype=np.float32)
    for side, sign in (("right", -1), ("left", 1)):
        lx = cx + sign * 0.19 * habitus
        a = 0.155 * habitus
        dome = (0.76 if side == "right" else 0.785) + rng.normal(0, 0.01)
        top = 0.12 + rng.normal(0, 0.008)
        ly, b = (top + dome) / 2 + 0.03, (dome - top) / 2 + 0.03
        diaphragm = dome - 0.05 * (1 - np.clip(((c.x - lx) / a) ** 2, 0, 1))
        mask = _ellipse(c, lx, ly, a, b, edge=0.012) * _ramp(diaphragm - c.y, 0.012)
        lungs[side] = _Lung(lx, ly, a, b, dome, sign, mask)
        lung_mask += mask
    img -= 0.21 * lung_mask

    texture = _smooth_noise(c, 30)
    markings = np.zeros(shape, dtype=np.float32)
    for lung in lungs.values():
        hilum_x = lung.cx - lung.lateral * 0.07
        dist = np.sqrt((c.x - hilum_x) ** 2 + (c.y - 0.46) ** 2)
        markings += 0.05 * np.clip(0.5 + 0.7 * texture, 0, 1.5) * np.exp(-dist / 0.17) * lung.mask

    mediastinum_width = 0.075
    cardiomediastinum = findings.get("Enlarged Cardiomediastinum")
    if cardiomediastinum:
        mediastinum_width += 0.045 * cardiomediastinum.strength
    img += 0.20 * _ramp(0.045 - np.abs(c.x - cx), 0.01)
    img += 0.20 * (_ramp(mediastinum_width - np.abs(c.x - cx), 0.012)
                   * _ramp(c.y - 0.12, 0.03) * _ramp(0.56 - c.y, 0.06))
    heart_half_width = 0.135 * habitus * (1.08 if view == "AP" else 1.0)
    cardiomegaly = findings.get("Cardiomegaly")
    if cardiomegaly:
        heart_half_width += (0.055 + 0.03 * _SIZE_SCALE[cardiomegaly.size]) * cardiomegaly.strength
    heart_height = 0.125 + (heart_half_width - 0.135) * 0.4
    heart_x = cx + 0.045 + (heart_half_width - 0.135) * 0.35
    img += 0.22 * _ellipse(c, heart_x, 0.635, heart_half_width, heart_height)

    thorax = _ellipse(c, cx, 0.48, 0.40 * habitus, 0.42, edge=0.04)
    for i in range(10):
        rib_y = 0.13 + i * 0.066 + 0.09 * (np.abs(c.x - cx) / 0.4) ** 1.5
        img += 0.055 * np.exp(-(((c.y - rib_y) / 0.011) ** 2)) * thorax * _ramp(np.abs(c.x - cx) - 0.06, 0.02)
    for sign in (-1, 1):
        img += 0.10 * _segments(c, [(cx + sign * 0.05, 0.14), (cx + sign * 0.30, 0.095)], 0.012)

    _draw_frontal_findings(c, img, markings, lungs, findings, cx)
    img += markings
    return _finish(rng, img, c)


def _draw_frontal_findings(c: _Canvas, img: np.ndarray, markings: np.ndarray, lungs: dict[str, _Lung],
                           findings: dict[str, PlantedFinding], cx: float) -> None:
    rng = c.rng
    for name, f in findings.items():
        k = f.strength
        scale = _SIZE_SCALE[f.size]
        if name == "Pleural Effusion":
            for side in _sides(f):
                lung = lungs[side]
                level = lung.dome - (0.07 + 0.19 * scale)
                lateral_frac = np.clip((c.x - lung.cx) * lung.lateral / lung.a, 0, 1)
                meniscus = level - 0.06 * lateral_frac
                fluid = lung.mask * _ramp(c.y - meniscus, 0.025)
                img += 0.30 * k * fluid
                markings *= 1 - fluid
        elif name in ("Consolidation", "Pneumonia", "Lung Opacity"):
            _draw_airspace(c, img, lungs, name, f)
        elif name == "Edema":
            for lung in lungs.values():
                hilum_x = lung.cx - lung.lateral * 0.05
                haze = np.exp(-(((c.x - hilum_x) / 0.10) ** 2) - ((c.y - 0.48) / 0.14) ** 2)
                img += (0.17 * haze + 0.04) * k * lung.mask
        elif name == "Atelectasis":
            for side in _sides(f):
                lung = lungs[side]
                y0 = rng.uniform(0.58, min(0.70, lung.dome - 0.06))
                band = _segments(
                    c,
                    [(lung.cx - 0.6 * lung.a, y0), (lung.cx + 0.6 * lung.a, y0 + rng.uniform(-0.04, 0.04))],
                    0.009 + 0.006 * scale,
                )
                img += 0.30 * k * band * lung.mask
        elif name == "Lung Lesion":
            for side in _sides(f):
                lung = lungs[side]
                for _ in range(1 + int(round(2 * scale))):
                    px, py = _random_point_in(c, lung, (0.2, 0.7))
                    radius = rng.uniform(0.012, 0.028)
                    aspect = c.shape[1] / c.shape[0]
                    dist = np.sqrt(((c.x - px) * aspect) ** 2 + (c.y - py) ** 2)
                    img += 0.32 * k * _ramp(radius - dist, 0.006)
        elif name == "Pneumothorax":
            for side in _sides(f):
                lung = lungs[side]
                depth = _ellipse_depth(c, lung.cx, lung.cy, lung.a, lung.b)
                rim = 0.12 + 0.22 * scale
                upper = _ramp(lung.cy + 0.05 - c.y, 0.1)
                collapsed = _ramp(rim - depth, 0.02) * lung.mask * upper
                markings *= 1 - collapsed
                img -= 0.08 * k * collapsed
                img += 0.14 * k * np.exp(-(((depth - rim) / 0.012) ** 2)) * upper * lung.mask
        elif name == "Pleural Other":
            for side in _sides(f):
                lung = lungs[side]
                depth = _ellipse_depth(c, lung.cx, lung.cy, lung.a, lung.b)
                lateral = _ramp((c.x - lung.cx) * lung.lateral / lung.a - 0.3, 0.2)
                img += 0.15 * k * _ramp(0.07 - np.abs(depth - 0.03), 0.03) * lateral * _ramp(c.y - 0.25, 0.05)
        elif name == "Fracture":
            for side in _sides(f):
                lung = lungs[side]
                fx = lung.cx + lung.lateral * 0.85 * lung.a
                fy = rng.uniform(0.35, 0.6)
                img += 0.25 * k * _blob(c, fx, fy, 0.02)
                img -= 0.12 * k * _segments(c, [(fx - 0.01, fy - 0.02), (fx + 0.01, fy + 0.02)], 0.004)
        elif name == "Support Devices":
            _draw_devices(c, img, cx, f.devices or ("et_tube",))


def _draw_airspace(c: _Canvas, img: np.ndarray, lungs: dict[str, _Lung], name: str, f: PlantedFinding) -> None:
    rng, k, scale = c.rng, f.strength, _SIZE_SCALE[f.size]
    for side in _sides(f):
        lung = lungs[side]
        y_range = (0.30, 0.55) if name == "Lung Opacity" else (0.45, 0.70)
        px, py = _random_point_in(c, lung, y_range)
        if name == "Consolidation":
            patch = _ramp(1.0 - np.sqrt(((c.x - px) / (0.05 + 0.05 * scale)) ** 2
                                        + ((c.y - py) / (0.06 + 0.05 * scale)) ** 2), 0.3)
            img += 0.30 * k * patch * (0.85 + 0.15 * _smooth_noise(c, 40)) * lung.mask
        elif name == "Pneumonia":
            texture = _smooth_noise(c, 48)
            for _ in range(int(rng.integers(2, 5))):
                bx = px + rng.normal(0, 0.035)
                by = py + rng.normal(0, 0.035)
                img += 0.22 * k * _blob(c, bx, by, 0.035 + 0.02 * scale, texture) * lung.mask
        else:
            img += 0.13 * k * _blob(c, px, py, 0.09 + 0.04 * scale) * lung.mask


def _draw_devices(c: _Canvas, img: np.ndarray, cx: float, kinds: tuple[str, ...]) -> None:
    rng = c.rng
    for kind in kinds:
        if kind == "et_tube":
            tip = rng.uniform(0.26, 0.34)
            for offset in (-0.008, 0.008):
                img += 0.45 * _segments(c, [(cx + offset, 0.0), (cx + offset, tip)], 0.003)
        elif kind == "central_line":
            img += 0.5 * _segments(
                c, [(cx - 0.26, 0.11), (cx - 0.12, 0.17), (cx - 0.04, 0.27), (cx - 0.02, 0.42)], 0.004
            )
        elif kind == "ng_tube":
            img += 0.45 * _segments(
                c, [(cx - 0.01, 0.0), (cx + 0.005, 0.45), (cx + 0.06, 0.82), (cx + 0.14, 0.88)], 0.004
            )
        else:
            px, py = cx + 0.26, 0.15
            box = _ramp(0.035 - np.abs(c.x - px), 0.004) * _ramp(0.025 - np.abs(c.y - py), 0.004)
            img += 0.7 * box
            img += 0.5 * _segments(c, [(px, py), (cx + 0.12, 0.28), (cx + 0.05, 0.52), (cx + 0.04, 0.68)], 0.0035)


def draw_lateral(rng: np.random.Generator, findings: dict[str, PlantedFinding], shape: tuple[int, int]) -> np.ndarray:
    """A lateral chest radiograph (anterior to the image's left) as a float32 density map in [0, 1]."""
    height, width = shape
    c = _Canvas(x=np.linspace(0, 1, width, dtype=np.float32)[None, :],
                y=np.linspace(0, 1, height, dtype=np.float32)[:, None], rng=rng)
    habitus = rng.uniform(0.93, 1.05)
    img = np.full(shape, 0.05, dtype=np.float32)
    img += 0.32 * _ellipse(c, 0.5, 0.58, 0.44 * habitus, 0.66)
    lx, ly, a, b = 0.52, 0.45, 0.28 * habitus, 0.32
    dome = 0.77 + rng.normal(0, 0.01)
    diaphragm = dome - 0.05 * (1 - np.clip(((c.x - lx) / a) ** 2, 0, 1))
    lung_mask = _ellipse(c, lx, ly, a, b, edge=0.015) * _ramp(diaphragm - c.y, 0.012)
    img -= 0.20 * lung_mask
    texture = _smooth_noise(c, 30)
    dist = np.sqrt((c.x - 0.55) ** 2 + (c.y - 0.46) ** 2)
    markings = 0.045 * np.clip(0.5 + 0.7 * texture, 0, 1.5) * np.exp(-dist / 0.18) * lung_mask
    heart_a = 0.13
    if "Cardiomegaly" in findings:
        heart_a += 0.045 * findings["Cardiomegaly"].strength
    # the heart shows only where it displaces aerated lung, as soft-tissue density
    img += 0.22 * _ellipse(c, 0.28 + heart_a, 0.58, heart_a, 0.14) * _ellipse(c, lx, ly, a, b, edge=0.015)
    for i in range(12):
        vy = 0.08 + i * 0.072
        block = _ramp(0.045 - np.abs(c.x - 0.80 - 0.02 * (vy - 0.5)), 0.008) * _ramp(0.028 - np.abs(c.y - vy), 0.008)
        img += 0.22 * block
    img += 0.10 * _segments(c, [(0.13, 0.18), (0.11, 0.55)], 0.01)

    lung = _Lung(lx, ly, a, b, dome, 1, lung_mask)
    for name, f in findings.items():
        k = f.strength
        scale = _SIZE_SCALE[f.size]
        if name == "Pleural Effusion":
            level = dome - (0.06 + 0.16 * scale)
            meniscus = level - 0.08 * np.clip((c.x - 0.55) / 0.25, 0, 1)
            fluid = _ramp(c.x - 0.48, 0.05) * _ramp(c.y - meniscus, 0.025) * lung_mask
            img += 0.28 * k * fluid
            markings *= 1 - fluid
        elif name in ("Consolidation", "Pneumonia", "Lung Opacity"):
            px, py = _random_point_in(c, lung, (0.35, 0.65))
            radius = {"Consolidation": 0.07, "Pneumonia": 0.05, "Lung Opacity": 0.10}[name] + 0.03 * scale
            strength = {"Consolidation": 0.26, "Pneumonia": 0.2, "Lung Opacity": 0.12}[name]
            img += strength * k * _blob(c, px, py, radius, _smooth_noise(c, 40)) * lung_mask
        elif name == "Edema":
            img += (0.15 * np.exp(-(((c.x - 0.55) / 0.12) ** 2) - ((c.y - 0.48) / 0.14) ** 2) + 0.04) * k * lung_mask
        elif name == "Atelectasis":
            y0 = rng.uniform(0.55, 0.68)
            img += 0.26 * k * _segments(c, [(0.35, y0), (0.68, y0 + 0.05)], 0.009) * lung_mask
        elif name == "Lung Lesion":
            px, py = _random_point_in(c, lung, (0.2, 0.65))
            radius = rng.uniform(0.012, 0.026)
            aspect = width / height
            img += 0.30 * k * _ramp(radius - np.sqrt(((c.x - px) * aspect) ** 2 + (c.y - py) ** 2), 0.006)
        elif name == "Enlarged Cardiomediastinum":
            img += 0.12 * k * _ellipse(c, 0.30, 0.35, 0.10, 0.12) * lung_mask
        elif name == "Support Devices":
            img += 0.45 * _segments(c, [(0.42, 0.0), (0.46, 0.30), (0.50, 0.55)], 0.004)
    img += markings
    return _finish(rng, img, c)


def _finish(rng: np.random.Generator, img: np.ndarray, c: _Canvas) -> np.ndarray:
    """Exposure, heel effect and quantum noise, so no two images share a histogram."""
    img = np.clip(img, 0.0, None) ** np.float32(rng.uniform(0.85, 1.15))
    img += np.float32(rng.uniform(-0.03, 0.03)) * (c.x - 0.5) + np.float32(rng.uniform(-0.02, 0.02)) * (c.y - 0.5)
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    img += noise * (0.006 + 0.012 * np.sqrt(np.clip(img, 0, 1)))
    return np.clip(img, 0.0, 1.0).astype(np.float32)
