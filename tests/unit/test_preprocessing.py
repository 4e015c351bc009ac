"""The preprocessing contract: every accepted format and mode gives uint8 (32, 32, 3) RGB, every
rejection is a typed error with a message a user understands."""

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from classifier import errors
from classifier.datasets import load_dataset
from classifier.limits import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, MIN_IMAGE_SIDE
from classifier.preprocessing import decode_image
from tests.conftest import encode, gradient

WHITE = np.array([255, 255, 255], dtype=np.uint8)


def assert_model_input(array: np.ndarray) -> None:
    assert array.dtype == np.uint8
    assert array.shape == (32, 32, 3)
    assert array.flags.c_contiguous


@pytest.mark.parametrize(
    "mode, format, options",
    [
        ("RGB", "JPEG", {"quality": 90}),
        ("RGB", "PNG", {}),
        ("RGBA", "PNG", {}),
        ("P", "PNG", {}),
        ("L", "PNG", {}),
        ("L", "JPEG", {}),
        ("CMYK", "JPEG", {}),
        ("RGB", "WEBP", {"quality": 90}),
        ("RGBA", "WEBP", {"lossless": True}),
        ("P", "GIF", {}),
        ("RGB", "BMP", {}),
        ("1", "PNG", {}),
    ],
)
def test_each_accepted_format_and_mode_becomes_rgb_uint8(mode, format, options):
    data = encode(gradient().convert(mode), format, **options)

    array = decode_image(data)

    assert_model_input(array)
    assert array.std() > 0  # the picture survived, not a blank canvas


def test_a_32x32_png_passes_through_unchanged():
    original = np.asarray(gradient(32, 32))

    assert np.array_equal(decode_image(encode(gradient(32, 32), "PNG")), original)


def test_alpha_is_composited_on_white():
    transparent = Image.new("RGBA", (40, 40), (200, 0, 0, 0))
    half = Image.new("RGBA", (40, 40), (0, 0, 0, 128))

    assert (decode_image(encode(transparent, "PNG")) == WHITE).all()
    assert np.allclose(decode_image(encode(half, "PNG")), 127, atol=2)


def test_palette_transparency_is_composited_on_white():
    image = Image.new("P", (40, 40), 0)
    image.putpalette([10, 20, 30] * 256)
    data = encode(image, "PNG", transparency=0)

    assert (decode_image(data) == WHITE).all()


def test_16_bit_grey_is_scaled_not_clipped():
    mid_grey = Image.fromarray(np.full((40, 40), 32768, dtype=np.uint16))  # mode I;16

    array = decode_image(encode(mid_grey, "PNG"))

    assert np.allclose(array, 128, atol=1)


def test_exif_orientation_is_applied():
    # A tall image whose top half is red, stored sideways with EXIF orientation 6 (rotate 90° CW).
    tall = Image.new("RGB", (40, 80), (0, 0, 255))
    tall.paste((255, 0, 0), (0, 0, 40, 40))
    stored = tall.transpose(Image.Transpose.ROTATE_90)  # what a camera writes: 80x40
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, "JPEG", exif=exif, quality=95)

    array = decode_image(data).astype(int)

    top, bottom = array[:16].mean(axis=(0, 1)), array[16:].mean(axis=(0, 1))
    assert top[0] > 200 and top[2] < 60  # red on top once upright
    assert bottom[2] > 200 and bottom[0] < 60


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (40, 40), colour).convert("P") for colour in ((255, 0, 0), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])

    array = decode_image(buffer.getvalue())

    assert array[..., 0].mean() > 200 and array[..., 1].mean() < 50


def test_centre_crop_keeps_the_middle_of_a_wide_image():
    wide = Image.new("RGB", (300, 100), (255, 0, 0))
    wide.paste((0, 255, 0), (100, 0, 200, 100))  # green centre square

    array = decode_image(encode(wide, "PNG"))

    inside = array[:, 2:-2]  # the antialiasing filter may reach across the crop's edge
    assert (inside[..., 1] > 240).all() and (inside[..., 0] < 15).all()


def test_large_photo_is_resized_with_antialiasing():
    # 4000x3000 fine stripes: a sampling resize would alias to stripes, an antialiased one to grey.
    stripes = np.zeros((3000, 4000, 3), dtype=np.uint8)
    stripes[:, ::2] = 255
    data = encode(Image.fromarray(stripes), "JPEG", quality=95)

    array = decode_image(data)

    assert_model_input(array)
    assert array.std() < 8 and 100 < array.mean() < 155


@pytest.mark.parametrize(
    "data, error",
    [
        (b"", errors.EmptyImageError),
        (b"this is plainly text, not an image", errors.UndecodableImageError),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", errors.UndecodableImageError),
        (bytes(range(256)) * 8, errors.UndecodableImageError),
    ],
)
def test_non_images_are_rejected(data, error):
    with pytest.raises(error) as raised:
        decode_image(data)
    assert str(raised.value)


@pytest.mark.parametrize("format", ["TIFF", "ICO", "PPM"])
def test_unsupported_formats_are_rejected_by_name(format):
    with pytest.raises(errors.UnsupportedFormatError, match=format if format != "PPM" else "PPM"):
        decode_image(encode(gradient(), format))


def test_over_the_byte_limit_is_rejected_before_decoding():
    with pytest.raises(errors.ImageTooLargeError, match="bytes"):
        decode_image(b"\xff\xd8" + b"\x00" * MAX_IMAGE_BYTES)


def test_decompression_bomb_is_rejected_from_its_header():
    # 8000x6000 one-bit pixels compress to a few kB but would decode to 48 megapixels.
    bomb = encode(Image.new("1", (8000, 6000)), "PNG")
    assert len(bomb) < 100_000 and 8000 * 6000 > MAX_IMAGE_PIXELS

    with pytest.raises(errors.ImageTooLargeError, match="pixels"):
        decode_image(bomb)


def test_too_small_images_are_rejected():
    side = MIN_IMAGE_SIDE - 1
    with pytest.raises(errors.ImageTooSmallError, match=str(MIN_IMAGE_SIDE)):
        decode_image(encode(gradient(side, side), "PNG"))


@pytest.mark.parametrize("format", ["JPEG", "PNG"])
def test_truncated_files_are_rejected(format):
    data = encode(gradient(200, 200), format)

    with pytest.raises(errors.UndecodableImageError, match="truncated"):
        decode_image(data[: len(data) // 2])


def test_every_rejection_is_an_invalid_image_error_with_a_4xx_status():
    for error in (
        errors.EmptyImageError,
        errors.UndecodableImageError,
        errors.UnsupportedFormatError,
        errors.ImageTooLargeError,
        errors.ImageTooSmallError,
    ):
        assert issubclass(error, errors.InvalidImageError)
        assert 400 <= error.http_status < 500


@pytest.mark.parametrize("format", ["JPEG", "PNG", "WEBP"])
def test_train_serve_parity(tmp_path, format):
    """An image through the dataset loader and through the serving function: identical arrays."""
    data = encode(gradient(97, 61), format)
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr(f"cat/0001.{format.lower()}", data)

    loaded = load_dataset(archive)

    assert np.array_equal(loaded.images[0], decode_image(data))
