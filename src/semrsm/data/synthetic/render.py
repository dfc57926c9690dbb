"""Rendering of textured backgrounds and of category objects at random positions, scales and rotations."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from semrsm.data.synthetic.categories import SHAPES, Category, texture_rgb

SUPERSAMPLE = 4  # anti-aliasing factor of object outlines


@dataclass(frozen=True)
class Placement:
    """Where one object goes: centre (x, y) and radius in pixels, rotation in radians."""

    category: int
    cx: float
    cy: float
    radius: float
    angle: float


def background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A muted, smoothly varying colour field with grain and clutter strokes: (H, W, 3) floats in [0, 1]."""
    grey = rng.uniform(0.3, 0.7)
    coarse = grey + 0.35 * (rng.uniform(0, 1, size=(4, 4, 3)) - 0.5)
    field = Image.fromarray(np.uint8(np.clip(coarse, 0, 1) * 255)).resize((width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(field)
    for _ in range(rng.integers(3, 7)):
        points = rng.uniform(0, 1, size=(2, 2)) * (width, height)
        colour = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 0.3), rng.uniform(0.2, 0.8))
        draw.line(
            [tuple(p) for p in points],
            fill=tuple(int(255 * c) for c in colour),
            width=int(rng.integers(1, 3)),
        )
    grain = rng.normal(0, 0.03, size=(height, width, 1))
    return np.clip(np.asarray(field, dtype=np.float64) / 255 + grain, 0, 1)


def outline(place: Placement, shape: str) -> np.ndarray:
    """The object's polygon in image pixel coordinates, (N, 2) as (x, y)."""
    c, s = np.cos(place.angle), np.sin(place.angle)
    rotated = SHAPES[shape] @ np.array([[c, s], [-s, c]])
    return rotated * place.radius + (place.cx, place.cy)


def draw_object(
    canvas: np.ndarray,
    instance_map: np.ndarray,
    instance_value: int,
    category: Category,
    place: Placement,
    rng: np.random.Generator,
) -> np.ndarray:
    """Paint one textured, anti-aliased object onto `canvas` in place; mark its pixels in `instance_map`.

    Returns its polygon (N, 2) in image coordinates. Later objects occlude earlier ones.
    """
    height, width = instance_map.shape
    polygon = outline(place, category.shape)
    x0, y0 = np.maximum(np.floor(polygon.min(axis=0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(polygon.max(axis=0)).astype(int) + 2, (width, height))
    if x1 <= x0 or y1 <= y0:
        return polygon
    mask = Image.new("L", ((x1 - x0) * SUPERSAMPLE, (y1 - y0) * SUPERSAMPLE))
    ImageDraw.Draw(mask).polygon([tuple(p) for p in (polygon - (x0, y0)) * SUPERSAMPLE], fill=255)
    alpha = np.asarray(mask.resize((x1 - x0, y1 - y0), Image.BOX), dtype=np.float64) / 255
    ys, xs = np.mgrid[y0:y1, x0:x1] + 0.5
    dx, dy = xs - place.cx, ys - place.cy
    c, s = np.cos(place.angle), np.sin(place.angle)
    u, v = (c * dx + s * dy) / place.radius, (-s * dx + c * dy) / place.radius
    region = canvas[y0:y1, x0:x1]
    region += alpha[..., None] * (texture_rgb(category, u, v, rng) - region)
    instance_map[y0:y1, x0:x1][alpha >= 0.5] = instance_value
    return polygon


def place_objects(
    categories: list[int],
    height: int,
    width: int,
    radius_range: tuple[float, float],
    rng: np.random.Generator,
    top: float = 0.0,
    min_gap: float = 0.7,
    tries: int = 50,
) -> list[Placement]:
    """Random placements for `categories`: radius from radius_range (fractions of min(H, W)), centre inside
    the image at or below row top * height, any rotation. Objects may overlap, but two centres stay at least
    min_gap * (r1 + r2) apart so no object is hidden; one that finds no room in `tries` draws is left out.
    """
    placed: list[Placement] = []
    for category in categories:
        for _ in range(tries):
            radius = rng.uniform(*radius_range) * min(height, width)
            margin = 0.6 * radius
            cx = rng.uniform(min(margin, width / 2), max(width - margin, width / 2))
            low = max(top * height, min(margin, height / 2))
            cy = rng.uniform(low, max(height - margin, low))
            angle = rng.uniform(0, 2 * np.pi)
            if all(np.hypot(cx - p.cx, cy - p.cy) >= min_gap * (radius + p.radius) for p in placed):
                placed.append(Placement(category, cx, cy, radius, angle))
                break
    return placed


def visible_box(instance_map: np.ndarray, instance_value: int) -> tuple[list[int], int] | None:
    """Inclusive [x0, y0, x1, y1] and pixel count of an instance's visible pixels; None when hidden."""
    ys, xs = np.nonzero(instance_map == instance_value)
    if xs.size == 0:
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())], int(xs.size)


def to_image(canvas: np.ndarray) -> Image.Image:
    """Float (H, W, 3) canvas in [0, 1] -> RGB PIL image."""
    return Image.fromarray(np.uint8(np.round(np.clip(canvas, 0, 1) * 255)))
