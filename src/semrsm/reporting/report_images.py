"""Figures for the report: a downscaled thumbnail and a full-size image, both as data URIs (Pillow).

The thumbnail is what the page shows; the full-size image opens on click. A full-size PNG larger than
FULL_PNG_LIMIT (figures full of photos, e.g. retrieval grids) is re-encoded as a high-quality WebP at its full
pixel size, which keeps the whole offline report near a few MB; the lossless original stays in the run's
results/figures/ and its path is shown with the figure.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

THUMB_WIDTH = 560  # px: about 1.6x the grid column, sharp on high-density screens
THUMB_QUALITY = 82
FULL_PNG_LIMIT = 400_000  # bytes
FULL_QUALITY = 90


@dataclass(frozen=True)
class EmbeddedImage:
    """A figure's two data URIs and sizes; ``full_format`` is "PNG" (the original bytes) or "WEBP"."""

    thumb_uri: str
    thumb_width: int
    thumb_height: int
    full_uri: str
    full_width: int
    full_height: int
    full_format: str

    @property
    def size_bytes(self) -> int:
        return len(self.thumb_uri) + len(self.full_uri)


def _uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _webp(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", quality=quality, method=6)
    return buffer.getvalue()


def embed_image(path: str | Path, thumb_width: int = THUMB_WIDTH) -> EmbeddedImage:
    """Read the PNG at ``path``: a WebP thumbnail ``thumb_width`` px wide (never upscaled) and the full-size
    image (the PNG itself, or a WebP of the same pixel size when the PNG exceeds FULL_PNG_LIMIT bytes)."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"figure file does not exist: {source}")
    raw = source.read_bytes()
    try:
        with Image.open(io.BytesIO(raw)) as opened:
            opened.load()
            image = opened.convert("RGBA" if "A" in opened.getbands() else "RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"figure {source} is not a readable image: {error}") from error
    width, height = image.size
    thumb = image.copy()
    if width > thumb_width:
        thumb = thumb.resize(
            (thumb_width, max(1, round(height * thumb_width / width))), Image.Resampling.LANCZOS
        )
    png = raw.startswith(b"\x89PNG\r\n\x1a\n")
    if png and len(raw) <= FULL_PNG_LIMIT:
        full_uri, full_format = _uri(raw, "image/png"), "PNG"
    else:
        full_uri, full_format = _uri(_webp(image, FULL_QUALITY), "image/webp"), "WEBP"
    return EmbeddedImage(
        thumb_uri=_uri(_webp(thumb, THUMB_QUALITY), "image/webp"),
        thumb_width=thumb.width,
        thumb_height=thumb.height,
        full_uri=full_uri,
        full_width=width,
        full_height=height,
        full_format=full_format,
    )
