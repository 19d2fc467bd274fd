"""Property-based tests (hypothesis) of sensor_msgs/Image ⇄ numpy over encodings, sizes, row padding and byte
orders. The reference is an independent construction of the message bytes and of the RGB conversion."""

from __future__ import annotations

import array

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import Image

from pose_ros.ros.image_conversion import ENCODINGS, array_to_image, image_to_array, to_rgb8

EXAMPLES = settings(max_examples=60, deadline=None, database=None)
YUV = {"uyvy", "yuv422", "yuyv", "yuv422_yuy2"}
ALL_ENCODINGS = tuple(sorted(ENCODINGS))


@st.composite
def frames(draw, encodings=ALL_ENCODINGS):
    """(pixels, encoding, row padding bytes, big-endian flag) with pixels of the encoding's dtype and shape."""
    encoding = draw(st.sampled_from(encodings))
    info = ENCODINGS[encoding]
    height, width = draw(st.integers(1, 7)), draw(st.integers(1, 9))
    if encoding in YUV:
        width += width % 2  # 4:2:2 pairs
    shape = (height, width) if info.channels == 1 else (height, width, info.channels)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if info.dtype == np.float32:
        pixels = rng.normal(0.0, 1000.0, size=shape).astype(np.float32)
        pixels[rng.random(shape) < 0.1] = np.nan
    else:
        pixels = rng.integers(0, np.iinfo(info.dtype).max, size=shape, dtype=info.dtype, endpoint=True)
    return pixels, encoding, draw(st.integers(0, 9)), draw(st.booleans())


def reference_message(pixels: np.ndarray, encoding: str, pad: int, big_endian: bool) -> Image:
    """The message a camera driver would send: each row's bytes in the given order, then `pad` junk bytes."""
    order = ">" if big_endian else "<"
    rows = [pixels[r].astype(pixels.dtype.newbyteorder(order)).tobytes() + bytes([0xEE] * pad)
            for r in range(pixels.shape[0])]
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding, is_bigendian=big_endian)
    msg.step = len(rows[0])
    msg.data = array.array("B", b"".join(rows))
    return msg


def reference_rgb8(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """RGB uint8 by the ROS encoding definitions: 16 bits keep the high byte, bgr* is reversed, alpha dropped,
    one channel is grey, float is min-max scaled over the finite pixels."""
    if pixels.ndim == 2:
        if pixels.dtype == np.float32:
            finite = np.isfinite(pixels)
            lo, hi = (pixels[finite].min(), pixels[finite].max()) if finite.any() else (0.0, 0.0)
            grey = np.zeros(pixels.shape, np.uint8)
            if finite.any():
                scaled = (np.where(finite, pixels, lo).astype(np.float64) - lo) * 255.0 / max(hi - lo, 1e-12)
                grey = scaled.astype(np.uint8)
        else:
            grey = (pixels // 256).astype(np.uint8) if pixels.dtype == np.uint16 else pixels
        return np.stack([grey] * 3, axis=-1)
    colour = (pixels // 256).astype(np.uint8) if pixels.dtype == np.uint16 else pixels
    rgb = colour[:, :, :3]
    return rgb[:, :, ::-1] if encoding.startswith("bgr") else rgb


@EXAMPLES
@given(frames())
def test_any_padded_message_in_either_byte_order_reads_back(frame) -> None:
    pixels, encoding, pad, big_endian = frame
    back = image_to_array(reference_message(pixels, encoding, pad, big_endian))
    assert back.shape == pixels.shape
    assert back.dtype == ENCODINGS[encoding].dtype and back.dtype.isnative
    np.testing.assert_array_equal(back, pixels)


@EXAMPLES
@given(frames())
def test_array_to_image_round_trips_with_packed_rows(frame) -> None:
    pixels, encoding, _, _ = frame
    msg = array_to_image(pixels, encoding)
    info = ENCODINGS[encoding]
    assert msg.step == pixels.shape[1] * info.channels * info.dtype.itemsize
    assert len(msg.data) == msg.step * msg.height
    np.testing.assert_array_equal(image_to_array(msg), pixels)


@EXAMPLES
@given(frames(tuple(sorted(set(ENCODINGS) - YUV))))
def test_to_rgb8_follows_the_encoding_definitions(frame) -> None:
    pixels, encoding, pad, big_endian = frame
    rgb = to_rgb8(reference_message(pixels, encoding, pad, big_endian))
    assert rgb.dtype == np.uint8 and rgb.shape == (*pixels.shape[:2], 3) and rgb.flags.c_contiguous
    expected = reference_rgb8(pixels, encoding)
    if pixels.dtype == np.float32:  # float scaling may round differently by one level
        assert np.abs(rgb.astype(int) - expected.astype(int)).max() <= 1
    else:
        np.testing.assert_array_equal(rgb, expected)
