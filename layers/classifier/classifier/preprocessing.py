"""The preprocessing contract: encoded image bytes to a ``uint8`` (32, 32, 3) RGB array.

Serving, training-data ingestion and the training pipeline all call :func:`decode_image`, so
training and serving cannot disagree. Pixels are never scaled here: the model normalises inside
its own graph and takes ``uint8`` input (see :mod:`classifier.litert`).

Steps: size checks on the encoded bytes, format check, pixel-count check before decoding
(decompression bombs), decode, EXIF orientation, conversion of every mode to RGB (alpha is
composited on white, 16-bit is scaled, not clipped), centre crop to a square, antialiased resize.
"""

import io
import struct
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from classifier.errors import (
    EmptyImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    UndecodableImageError,
    UnsupportedFormatError,
)
from classifier.limits import (
    IMAGE_SIZE,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    MIN_IMAGE_SIDE,
    SUPPORTED_FORMATS,
)

_WHITE = (255, 255, 255, 255)
# What Pillow raises for damaged data, by plugin: OSError (truncated), SyntaxError (bad headers),
# ValueError / EOFError / struct.error (inconsistent fields).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)
# JPEG can decode at 1/2, 1/4 or 1/8 scale for free; keep at least this many pixels a side so
# the antialiased resize still sees real detail.
_JPEG_DRAFT_SIDE = 4 * IMAGE_SIZE
# zlib level of kept model inputs: Pillow's default. On a 32x32 image the level hardly matters (mean
# 2.28 KB at level 1, 2.29 KB at 6 and 9 on CIFAR-10 test images; docs/mlops.md, "Kept inputs").
PNG_COMPRESS_LEVEL = 6


def decode_image(data: bytes) -> np.ndarray:
    """Decode ``data`` into a C-contiguous ``uint8`` array of shape (32, 32, 3), RGB.

    Raises a subclass of :class:`classifier.errors.InvalidImageError` for every rejection.
    """
    if not data:
        raise EmptyImageError("The image is empty (0 bytes).")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageTooLargeError(f"The image is {len(data):,} bytes; the limit is {MAX_IMAGE_BYTES:,} bytes.")
    image = _open(data)
    try:
        image = _to_rgb(ImageOps.exif_transpose(image))
        image = ImageOps.fit(image, (IMAGE_SIZE, IMAGE_SIZE), method=Image.Resampling.LANCZOS)
    except _DECODE_ERRORS as error:
        raise UndecodableImageError(f"The {image.format} image is damaged: {error}") from error
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def encode_png(pixels: np.ndarray) -> bytes:
    """A model input (``uint8`` (32, 32, 3), what :func:`decode_image` returns) as PNG bytes: lossless,
    so :func:`decode_image` of the result gives the same pixels back, and deterministic, so the same
    input always gives the same bytes (and the same content address in training data)."""
    if pixels.dtype != np.uint8 or pixels.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ValueError(f"Not a model input: {pixels.dtype} {pixels.shape}.")
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def _open(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as error:
        raise UndecodableImageError(
            "The bytes are not an image in any format this service reads "
            f"({', '.join(sorted(SUPPORTED_FORMATS))})."
        ) from error
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise ImageTooLargeError(f"The image has too many pixels: {error}") from error
    except _DECODE_ERRORS as error:
        raise UndecodableImageError(f"The image is damaged or truncated: {error}") from error
    if image.format not in SUPPORTED_FORMATS:
        raise UnsupportedFormatError(
            f"{image.format} images are not supported; send one of {', '.join(sorted(SUPPORTED_FORMATS))}."
        )
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(
            f"The image is {width}x{height} = {width * height:,} pixels; "
            f"the limit is {MAX_IMAGE_PIXELS:,} pixels."
        )
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ImageTooSmallError(
            f"The image is {width}x{height}; both sides must be at least {MIN_IMAGE_SIDE} pixels."
        )
    if image.format == "JPEG":
        image.draft("RGB", (_JPEG_DRAFT_SIDE, _JPEG_DRAFT_SIDE))
    try:
        image.load()
    except _DECODE_ERRORS as error:
        raise UndecodableImageError(f"The {image.format} image is damaged or truncated.") from error
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image), image.mode)).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        background = Image.new("RGBA", image.size, _WHITE)
        background.alpha_composite(image.convert("RGBA"))
        return background.convert("RGB")
    return image.convert("RGB")


def _to_uint8(pixels: np.ndarray, mode: str) -> np.ndarray:
    """Scale a 16-bit or 32-bit grey image to 8 bits (Pillow's own conversion clips at 255)."""
    if mode == "F":
        top = max(float(pixels.max()), 1.0)
        return np.clip(pixels / top * 255.0, 0, 255).astype(np.uint8)
    top = 65535.0 if pixels.max() > 255 or mode.startswith("I;16") else 255.0
    return np.clip(np.rint(pixels.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)
