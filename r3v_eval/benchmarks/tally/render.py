"""Pictures of tally rows: one cell per item, left to right, each filled with its colour and
showing its dots in white as on a die; the cells after the last item stay empty, so where the
row ends is seen. (Coloured dots on a light cell were too little colour for the tiny vision
tower: after 1,000 pre-training steps it named the item after another 3% of the time.)"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

from r3v_eval.benchmarks.tally.world import COLORS, Item, TallyConfig

BACKGROUND = (245, 245, 245)
CELL_LINE = (200, 200, 200)
DOT = (255, 255, 255)
#: die faces: dot centres as fractions of the cell side
FACES = {1: [(0.5, 0.5)],
         2: [(0.28, 0.28), (0.72, 0.72)],
         3: [(0.28, 0.28), (0.5, 0.5), (0.72, 0.72)],
         4: [(0.28, 0.28), (0.72, 0.28), (0.28, 0.72), (0.72, 0.72)],
         5: [(0.28, 0.28), (0.72, 0.28), (0.5, 0.5), (0.28, 0.72), (0.72, 0.72)]}


def render_row(items: Sequence[Item], config: TallyConfig | None = None) -> Image.Image:
    """The row as an RGB picture of ``max_items`` cells (``cell`` pixels square each)."""
    config = config or TallyConfig()
    if len(items) > config.max_items:
        raise ValueError(f"a row of {len(items)} items does not fit {config.max_items} cells")
    c = config.cell
    img = Image.new("RGB", (c * config.max_items, c), BACKGROUND)
    draw = ImageDraw.Draw(img)
    r = max(2.0, c * 0.11)
    for i in range(config.max_items):
        draw.rectangle([i * c, 0, (i + 1) * c - 1, c - 1], outline=CELL_LINE)
    for i, item in enumerate(items):
        draw.rectangle([i * c + 1, 1, (i + 1) * c - 2, c - 2], fill=COLORS[item.color])
        for fx, fy in FACES[item.dots]:
            x, y = i * c + fx * c, fy * c
            draw.ellipse([x - r, y - r, x + r, y + r], fill=DOT)
    return img
