"""Opening benchmark pictures: one rule for every source.

Every picture a model sees goes through :func:`to_rgb`, which composites transparency onto a
white background (a plain ``convert("RGB")`` turns a transparent background black, and
geometry diagrams and chart exports are often RGBA or palette images with a transparent
colour). :func:`open_image` reads the picture cells the sources hold (a PIL image, a
``{"bytes", "path"}`` cell of a ``datasets.Image`` column read with ``decode=False``, or a
file path) and turns an unreadable one into a :class:`DataError` naming it, so a corrupt file
is found when the benchmark loads, not mid-run.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

from PIL import Image, ImageFile, UnidentifiedImageError

from r3v_eval.benchmarks.errors import DataError

BACKGROUND = (255, 255, 255)
#: the smallest picture side (pixels) a model is given; smaller is a skipped, named row
MIN_SIDE = 4
#: the most extreme width : height ratio (Qwen's processors refuse more than 200)
MAX_ASPECT = 200
#: the most pixels a picture keeps when opened (16.8 MP, 4096 x 4096): larger ones are resized
#: down, keeping their shape, with a counted warning (the processors' max_pixels then bounds
#: the image tokens; this bounds the memory of the decoded picture itself)
MAX_PIXELS = 4096 * 4096
#: how many pictures this process has resized down (the count the warning gives)
resized = 0

logger = logging.getLogger(__name__)


def within_bounds(image: Image.Image, where: str) -> Image.Image:
    """``image`` when its size is sane; resized down (counted, warned) when over
    :data:`MAX_PIXELS`; a :class:`DataError` naming ``where`` when it is degenerate."""
    global resized
    w, h = image.size
    if min(w, h) < MIN_SIDE or max(w, h) > MAX_ASPECT * min(w, h):
        raise DataError(f"{where}: picture of {w}x{h} pixels is too small or too thin "
                        f"(each side >= {MIN_SIDE}, ratio <= {MAX_ASPECT})")
    if w * h <= MAX_PIXELS:
        return image
    scale = (MAX_PIXELS / (w * h)) ** 0.5
    image = image.resize((max(1, int(w * scale)), max(1, int(h * scale))), Image.Resampling.BICUBIC)
    resized += 1
    logger.warning("%s: picture of %dx%d pixels resized to %dx%d (over %d pixels; %d resized so "
                   "far)", where, w, h, *image.size, MAX_PIXELS, resized)
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as RGB; transparent or partly transparent pixels are blended onto white."""
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif image.mode in ("LA", "PA"):
        image = image.convert("RGBA")
    if image.mode == "RGBa":  # premultiplied alpha
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        canvas = Image.new("RGB", image.size, BACKGROUND)
        canvas.paste(image, mask=image.getchannel("A"))
        return canvas
    return image.convert("RGB")


def open_image(value: Any, where: str) -> Image.Image:
    """The picture held in ``value`` as an RGB image (see the module docstring).

    Raises :class:`DataError` naming ``where`` when the cell is empty, the file is missing, or
    the bytes are not a readable picture."""
    if isinstance(value, Image.Image):
        try:
            return within_bounds(to_rgb(value), where)
        except OSError as exc:  # a lazily opened file that turns out truncated
            raise DataError(f"{where}: unreadable image ({exc})") from None
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        if data:
            return _decode(io.BytesIO(data), where, path or "embedded bytes")
        if path:
            value = path
        else:
            raise DataError(f"{where}: empty image cell (no bytes and no path)")
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            raise DataError(f"{where}: image file not found: {path}")
        return _decode(path, where, str(path))
    raise DataError(f"{where}: unreadable image cell of type {type(value).__name__}")


def check_image_file(path: str | Path, where: str) -> None:
    """Open and decode the picture at ``path`` once; a :class:`DataError` if it cannot be."""
    open_image(path, where)


def _decode(source: Any, where: str, name: str) -> Image.Image:
    # strict even when another library (lmms-eval does) has told PIL to accept truncated files
    lenient, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        with Image.open(source) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:  # JPEG: decode at a reduced scale, never the whole picture
                scale = (MAX_PIXELS / (w * h)) ** 0.5
                im.draft("RGB", (int(w * scale) + 1, int(h * scale) + 1))
            im.load()
            return within_bounds(to_rgb(im), f"{where}: {name}")
    except UnidentifiedImageError:
        raise DataError(f"{where}: unreadable image {name} (not a picture format PIL reads)"
                        ) from None
    except DataError:  # out of bounds: already named
        raise
    except Image.DecompressionBombError as exc:  # far over any sane size: refused unread
        raise DataError(f"{where}: picture {name} is too large to open ({exc})") from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or damaged file
        raise DataError(f"{where}: unreadable image {name} ({type(exc).__name__}: {exc})") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient
