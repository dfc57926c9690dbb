"""Synthetic object categories: each a distinct outline (a simple polygon), surface texture and hue."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np


def _regular(n: int, radius: float = 1.0, phase: float = 0.0) -> np.ndarray:
    angles = phase + 2 * np.pi * np.arange(n) / n
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _star(points: int) -> np.ndarray:
    outer = _regular(points, 1.0, -np.pi / 2)
    inner = _regular(points, 0.45, -np.pi / 2 + np.pi / points)
    return np.stack([outer, inner], axis=1).reshape(-1, 2)


def _crescent() -> np.ndarray:
    outer = np.linspace(np.pi / 3, 2 * np.pi - np.pi / 3, 24)
    inner = np.linspace(2 * np.pi - np.pi / 2.2, np.pi / 2.2, 24)
    arc_outer = np.stack([np.cos(outer), np.sin(outer)], axis=1)
    arc_inner = np.stack([0.55 + 0.75 * np.cos(inner), 0.75 * np.sin(inner)], axis=1)
    return np.concatenate([arc_outer, arc_inner])


def _semicircle() -> np.ndarray:
    angles = np.linspace(0, np.pi, 25)
    return np.stack([np.cos(angles), 0.5 - np.sin(angles)], axis=1)


# Outlines in unit coordinates (roughly inside the unit disk), counter-clockwise, simple polygons.
SHAPES: dict[str, np.ndarray] = {
    "disk": _regular(40),
    "square": _regular(4, 1.0, np.pi / 4),
    "triangle": _regular(3, 1.0, -np.pi / 2),
    "star": _star(5),
    "cross": np.array(
        [
            [-0.3, -1],
            [0.3, -1],
            [0.3, -0.3],
            [1, -0.3],
            [1, 0.3],
            [0.3, 0.3],
            [0.3, 1],
            [-0.3, 1],
            [-0.3, 0.3],
            [-1, 0.3],
            [-1, -0.3],
            [-0.3, -0.3],
        ]
    ),  # fmt: skip
    "crescent": _crescent(),
    "arrow": np.array([[-1, -0.25], [0.2, -0.25], [0.2, -0.7], [1, 0], [0.2, 0.7], [0.2, 0.25], [-1, 0.25]]),
    "ell": np.array([[-0.7, -1], [-0.2, -1], [-0.2, 0.5], [0.7, 0.5], [0.7, 1], [-0.7, 1]]),
    "bar": np.array([[-1, -0.3], [1, -0.3], [1, 0.3], [-1, 0.3]]),
    "diamond": np.array([[0, -1], [0.55, 0], [0, 1], [-0.55, 0]]),
    "hexagon": _regular(6),
    "semicircle": _semicircle(),
}
TEXTURES = ("solid", "stripes", "checker", "dots", "rings", "gradient")
HUES = (
    "red",
    "orange",
    "yellow",
    "lime",
    "green",
    "teal",
    "cyan",
    "azure",
    "blue",
    "violet",
    "magenta",
    "pink",
)
MAX_CATEGORIES = len(SHAPES) * len(TEXTURES)


@dataclass(frozen=True)
class Category:
    """One object category: outline, texture and base hue (in [0, 1))."""

    name: str
    shape: str
    texture: str
    hue: float


def make_categories(k: int) -> list[Category]:
    """The first `k` categories; every one differs from every other in outline, texture or hue."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_CATEGORIES:
        raise ValueError(f"number of categories must be an integer in [1, {MAX_CATEGORIES}], got {k!r}")
    shapes = list(SHAPES)
    categories = []
    for i in range(k):
        shape = shapes[i % len(shapes)]
        texture = TEXTURES[(i + i // len(shapes)) % len(TEXTURES)]
        hue_index = (5 * i + i // len(shapes)) % len(HUES)
        categories.append(
            Category(f"{HUES[hue_index]} {texture} {shape}", shape, texture, hue_index / len(HUES))
        )
    return categories


def texture_rgb(category: Category, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Surface colour (..., 3) in [0, 1] at object-local coordinates (u, v) (unit = object radius).

    Per instance the hue, saturation, brightness, pattern frequency and phase are jittered a little.
    """
    hue = (category.hue + rng.uniform(-0.025, 0.025)) % 1.0
    light = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.65, 1.0), rng.uniform(0.7, 1.0)))
    dark = light * rng.uniform(0.2, 0.4)
    freq = rng.uniform(2.5, 3.5)
    phase = rng.uniform(0, 2 * np.pi)
    if category.texture == "solid":
        t = np.zeros_like(u)
    elif category.texture == "stripes":
        t = (np.sin(np.pi * freq * u + phase) > 0).astype(float)
    elif category.texture == "checker":
        t = (np.sin(np.pi * freq * u + phase) * np.sin(np.pi * freq * v + phase) > 0).astype(float)
    elif category.texture == "dots":
        cu, cv = (u * freq / 2 + phase) % 1 - 0.5, (v * freq / 2 + phase) % 1 - 0.5
        t = (cu**2 + cv**2 < 0.09).astype(float)
    elif category.texture == "rings":
        t = (np.sin(np.pi * freq * np.hypot(u, v) + phase) > 0).astype(float)
    else:  # gradient
        t = np.clip((u + 1) / 2, 0, 1)
    return light + t[..., None] * (dark - light)
