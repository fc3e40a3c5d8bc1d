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
from pathlib import Path
from typing import Any

from PIL import Image, ImageFile, UnidentifiedImageError

from r3v_eval.benchmarks.errors import DataError

BACKGROUND = (255, 255, 255)


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
            return to_rgb(value)
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
            im.load()
            return to_rgb(im)
    except UnidentifiedImageError:
        raise DataError(f"{where}: unreadable image {name} (not a picture format PIL reads)"
                        ) from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or damaged file
        raise DataError(f"{where}: unreadable image {name} ({type(exc).__name__}: {exc})") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient
