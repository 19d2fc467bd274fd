"""sensor_msgs/CompressedImage decoding and encoding: real JPEG/PNG data from OpenCV and Pillow, the `format`
field as image_transport writes it, and errors that name the problem."""

from __future__ import annotations

import array
import io

import cv2
import numpy as np
import pytest
from PIL import Image as PilImage
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from pose_ros.ros.image_conversion import (
    CompressedFormat,
    ImageConversionError,
    array_to_image,
    compressed_to_rgb8,
    message_to_rgb8,
    parse_compressed_format,
    rgb8_to_compressed,
)


def compressed(data: bytes, format_field: str) -> CompressedImage:
    return CompressedImage(format=format_field, data=array.array("B", data))


def cv2_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return encoded.tobytes()


def pil_bytes(pixels: np.ndarray, codec: str, **options) -> bytes:
    buffer = io.BytesIO()
    PilImage.fromarray(pixels).save(buffer, format=codec, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def frame(vtest_frames) -> np.ndarray:
    """A 768x576 RGB frame of vtest.avi with a pure red patch (to catch swapped channels)."""
    rgb = vtest_frames[1].copy()
    rgb[10:60, 10:60] = (255, 0, 0)
    return rgb


@pytest.mark.parametrize(
    "format_field", ["bgr8; jpeg compressed bgr8", "rgb8; jpeg compressed bgr8", "jpeg", "JPEG", ""]
)
def test_opencv_jpeg_decodes_to_rgb(frame, format_field) -> None:
    data = cv2_jpeg(frame)
    rgb = compressed_to_rgb8(compressed(data, format_field))
    assert rgb.shape == frame.shape and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    # Equal to an independent decoder (Pillow) within JPEG decoder rounding, and close to the original.
    reference = np.asarray(PilImage.open(io.BytesIO(data)).convert("RGB"))
    assert np.abs(rgb.astype(int) - reference).max() <= 4
    assert np.abs(rgb.astype(float) - frame).mean() < 3.0
    assert tuple(rgb[30, 30]) == pytest.approx((255, 0, 0), abs=6), "red stays red (channels not swapped)"


def test_pillow_jpeg_and_png_decode(frame) -> None:
    jpeg = compressed_to_rgb8(compressed(pil_bytes(frame, "JPEG", quality=92), "rgb8; jpeg compressed bgr8"))
    assert np.abs(jpeg.astype(float) - frame).mean() < 3.0
    png = compressed_to_rgb8(compressed(pil_bytes(frame, "PNG"), "rgb8; png compressed bgr8"))
    np.testing.assert_array_equal(png, frame)  # lossless


def test_png_grey_16_bit_and_alpha(frame) -> None:
    grey = frame[:, :, 1].copy()
    out = compressed_to_rgb8(compressed(pil_bytes(grey, "PNG"), "mono8; png compressed mono8"))
    np.testing.assert_array_equal(out, np.repeat(grey[:, :, None], 3, axis=2))
    deep = grey.astype(np.uint16) * 257  # 16-bit grey: v * 257 >> 8 == v
    ok, data = cv2.imencode(".png", deep)
    assert ok
    out16 = compressed_to_rgb8(compressed(data.tobytes(), "mono16; png compressed mono16"))
    np.testing.assert_array_equal(out16[:, :, 0], grey)
    rgba = np.dstack([frame, np.full(frame.shape[:2], 128, np.uint8)])
    out_rgba = compressed_to_rgb8(compressed(pil_bytes(rgba, "PNG"), "rgba8; png compressed bgra8"))
    np.testing.assert_array_equal(out_rgba, frame)


def test_target_in_rgb_order_is_not_swapped(frame) -> None:
    """A format whose target is rgb8 says the compressed pixels are already in RGB order."""
    ok, data = cv2.imencode(".png", frame)  # OpenCV writes the array as if it were BGR: channels stay RGB-ordered
    assert ok
    out = compressed_to_rgb8(compressed(data.tobytes(), "rgb8; png compressed rgb8"))
    np.testing.assert_array_equal(out, frame)
    swapped = compressed_to_rgb8(compressed(data.tobytes(), "rgb8; png compressed bgr8"))
    np.testing.assert_array_equal(swapped, frame[:, :, ::-1])


def test_encode_round_trip_and_format(frame) -> None:
    header = Header(frame_id="cam")
    header.stamp.sec = 7
    msg = rgb8_to_compressed(frame, header, "jpeg", 90)
    assert msg.format == "rgb8; jpeg compressed bgr8" and msg.header == header
    assert bytes(msg.data[:3]) == b"\xff\xd8\xff"
    assert np.abs(compressed_to_rgb8(msg).astype(float) - frame).mean() < 4.0
    png = rgb8_to_compressed(frame, header, "png")
    np.testing.assert_array_equal(compressed_to_rgb8(png), frame)
    assert np.asarray(PilImage.open(io.BytesIO(bytes(png.data)))).tolist() == frame.tolist()
    smaller = rgb8_to_compressed(frame, header, "jpeg", 30)
    assert len(smaller.data) < len(msg.data)


def test_message_to_rgb8_takes_both_types(frame) -> None:
    raw = array_to_image(np.ascontiguousarray(frame[:, :, ::-1]), "bgr8")
    np.testing.assert_array_equal(message_to_rgb8(raw), frame)
    assert isinstance(raw, Image)
    png = compressed(pil_bytes(frame, "PNG"), "bgr8; png compressed bgr8")
    np.testing.assert_array_equal(message_to_rgb8(png), frame)


def test_parse_format_field() -> None:
    jpeg = b"\xff\xd8\xff\xe0rest"
    assert parse_compressed_format("rgb8; jpeg compressed bgr8", jpeg) == CompressedFormat("rgb8", "jpeg", "bgr8")
    assert parse_compressed_format("mono8; jpeg compressed ", jpeg) == CompressedFormat("mono8", "jpeg", "")
    assert parse_compressed_format("jpg", jpeg) == CompressedFormat("", "jpeg", "")
    assert parse_compressed_format("", b"\x89PNG\r\n\x1a\n...") == CompressedFormat("", "png", "")


@pytest.mark.parametrize(
    ("format_field", "data", "words"),
    [
        ("h264", b"\x00\x00\x00\x01gd", "unsupported compressed image format 'h264'"),
        ("16UC1; compressedDepth png", b"\x00" * 12 + b"\x89PNG\r\n\x1a\n", "compressedDepth is for depth images"),
        ("rgb8; png compressed bgr8", b"\xff\xd8\xff\xe0\x00\x10JFIF", "says png"),
        ("", b"GIF89a....", "neither JPEG nor PNG"),
        ("jpeg", b"", "empty compressed image"),
    ],
)
def test_unusable_format_or_data_is_explained(format_field, data, words) -> None:
    with pytest.raises(ImageConversionError, match=words) as error:
        compressed_to_rgb8(compressed(data, format_field))
    assert "image_transport" in str(error.value) or "holds" in str(error.value) or "empty" in str(error.value)


def test_corrupt_jpeg_is_an_error_not_a_crash(frame) -> None:
    data = cv2_jpeg(frame)
    with pytest.raises(ImageConversionError, match="cannot decode the jpeg data"):
        compressed_to_rgb8(compressed(data[:300], "bgr8; jpeg compressed bgr8"))
    with pytest.raises(ImageConversionError, match="cannot decode"):
        compressed_to_rgb8(compressed(b"\xff\xd8\xff" + bytes(5000), "jpeg"))
