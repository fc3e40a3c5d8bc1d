"""Pictures of the ``shapes`` world: one flat-coloured, outlined shape per occupied cell.

The same scene and knobs give byte-identical PNG files."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image, ImageDraw

from r3v_eval.benchmarks.shapes.world import COLORS, ShapesConfig

BACKGROUND = (240, 240, 240)
GRID_LINE = (205, 205, 205)
OUTLINE = (35, 35, 35)


def _shape_points(shape: str, cx: float, cy: float, h: float) -> list[tuple[int, int]]:
    if shape == "triangle":
        pts = [(cx, cy - h), (cx + h, cy + 0.85 * h), (cx - h, cy + 0.85 * h)]
    elif shape == "diamond":
        pts = [(cx, cy - h), (cx + h, cy), (cx, cy + h), (cx - h, cy)]
    elif shape == "cross":
        a = 0.34 * h
        pts = [(cx - a, cy - h), (cx + a, cy - h), (cx + a, cy - a), (cx + h, cy - a),
               (cx + h, cy + a), (cx + a, cy + a), (cx + a, cy + h), (cx - a, cy + h),
               (cx - a, cy + a), (cx - h, cy + a), (cx - h, cy - a), (cx - a, cy - a)]
    elif shape == "star":
        pts = []
        for k in range(10):
            r = h if k % 2 == 0 else 0.5 * h
            ang = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + r * math.cos(ang), cy + r * math.sin(ang) + 0.08 * h))
    else:
        raise ValueError(f"no polygon for shape {shape!r}")
    return [(round(x), round(y)) for x, y in pts]


def render_scene(objects: Sequence[Mapping[str, Any]], config: ShapesConfig | None = None
                 ) -> Image.Image:
    """Draw a scene as an RGB picture: one flat-coloured, outlined shape per occupied cell."""
    config = config or ShapesConfig()
    size, g = config.image_size, config.grid_size
    cell = size / g
    img = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(img)
    if config.grid_lines:
        for k in range(1, g):
            p = round(k * cell)
            draw.line([(p, 0), (p, size - 1)], fill=GRID_LINE, width=1)
            draw.line([(0, p), (size - 1, p)], fill=GRID_LINE, width=1)
    width = max(1, round(size / 112))
    h = cell * config.shape_scale / 2
    for o in objects:
        if not (1 <= o["row"] <= g and 1 <= o["col"] <= g):
            raise ValueError(f"object outside the {g}x{g} grid: {dict(o)}")
        cx = (o["col"] - 0.5) * cell
        cy = (o["row"] - 0.5) * cell
        fill = COLORS[o["color"]]
        shape = o["shape"]
        if shape == "square":
            s = 0.88 * h  # a square looks bigger than a circle of the same width
            draw.rectangle([round(cx - s), round(cy - s), round(cx + s), round(cy + s)],
                           fill=fill, outline=OUTLINE, width=width)
        elif shape == "circle":
            draw.ellipse([round(cx - h), round(cy - h), round(cx + h), round(cy + h)],
                         fill=fill, outline=OUTLINE, width=width)
        else:
            draw.polygon(_shape_points(shape, cx, cy, h), fill=fill, outline=OUTLINE,
                         width=width)
    return img


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
