"""sensor_msgs/Image ⇄ numpy: round trips for every encoding, step padding, byte order, bad frames."""

from __future__ import annotations

import array

import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from pose_ros.ros.image_conversion import (
    ENCODINGS,
    ImageConversionError,
    array_to_image,
    image_to_array,
    to_rgb8,
)

RNG = np.random.default_rng(7)


def random_pixels(encoding: str, height: int = 5, width: int = 6) -> np.ndarray:
    info = ENCODINGS[encoding]
    shape = (height, width) if info.channels == 1 else (height, width, info.channels)
    if info.dtype == np.float32:
        return RNG.normal(size=shape).astype(np.float32)
    return RNG.integers(0, np.iinfo(info.dtype).max, size=shape, dtype=info.dtype)


def padded_message(pixels: np.ndarray, encoding: str, pad: int, big_endian: bool) -> Image:
    """An Image with `pad` junk bytes after every row, in the requested byte order."""
    stored = pixels.astype(pixels.dtype.newbyteorder(">" if big_endian else "<"))
    rows = stored.reshape(pixels.shape[0], -1).view(np.uint8)
    junk = np.full((rows.shape[0], pad), 0xAB, np.uint8)
    data = np.concatenate([rows, junk], axis=1)
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding, is_bigendian=big_endian)
    msg.step = data.shape[1]
    msg.data = array.array("B", data.tobytes())
    return msg


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_round_trip_every_encoding(encoding: str) -> None:
    pixels = random_pixels(encoding)
    header = Header(frame_id="camera_optical")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = array_to_image(pixels, encoding, header)
    assert msg.header == header
    assert msg.step == pixels.shape[1] * pixels.itemsize * ENCODINGS[encoding].channels
    back = image_to_array(msg)
    np.testing.assert_array_equal(back, pixels)


@pytest.mark.parametrize("encoding", ["rgb8", "bgra8", "mono16", "16UC1", "32FC1", "rgb16"])
@pytest.mark.parametrize("big_endian", [False, True])
def test_step_padding_and_byte_order(encoding: str, big_endian: bool) -> None:
    pixels = random_pixels(encoding, height=4, width=7)
    msg = padded_message(pixels, encoding, pad=5, big_endian=big_endian)
    np.testing.assert_array_equal(image_to_array(msg), pixels)


def test_zero_copy_view_when_byte_order_matches() -> None:
    pixels = random_pixels("bgr8", 8, 9)
    msg = padded_message(pixels, "bgr8", pad=3, big_endian=False)
    view = image_to_array(msg)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))


@pytest.mark.parametrize(
    ("encoding", "to_rgb"),
    [
        ("rgb8", lambda p: p),
        ("bgr8", lambda p: p[:, :, ::-1]),
        ("rgba8", lambda p: p[:, :, :3]),
        ("bgra8", lambda p: p[:, :, 2::-1]),
        ("mono8", lambda p: np.repeat(p[:, :, None], 3, axis=2)),
        ("mono16", lambda p: np.repeat((p >> 8).astype(np.uint8)[:, :, None], 3, axis=2)),
    ],
)
def test_to_rgb8(encoding: str, to_rgb) -> None:
    pixels = random_pixels(encoding)
    rgb = to_rgb8(array_to_image(pixels, encoding))
    assert rgb.shape == (*pixels.shape[:2], 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, to_rgb(pixels))


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"])
def test_yuv422_decodes_to_the_colour(encoding: str) -> None:
    """A flat colour packed as 4:2:2 in either byte order decodes to its BT.601 (video range) RGB."""
    y, u, v = 120, 90, 160
    pair = [u, y, v, y] if encoding in ("yuv422", "uyvy") else [y, u, y, v]
    packed = np.tile(np.array(pair, np.uint8), (4, 4)).reshape(4, 8, 2)
    rgb = to_rgb8(array_to_image(packed, encoding))
    luma = 1.164 * (y - 16)
    red, blue = luma + 1.596 * (v - 128), luma + 2.017 * (u - 128)
    expected = np.array([red, luma - 0.392 * (u - 128) - 0.813 * (v - 128), blue])
    assert np.abs(rgb.astype(float) - expected).max() <= 2


def test_float_depth_to_rgb8_ignores_nan() -> None:
    depth = np.array([[1.0, np.nan], [3.0, 2.0]], np.float32)
    rgb = to_rgb8(array_to_image(depth, "32FC1"))
    assert rgb[0, 0, 0] == 0 and rgb[1, 0, 0] == 255 and rgb[0, 1, 0] == 0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: setattr(m, "encoding", "weird42"), "unsupported encoding"),
        (lambda m: (setattr(m, "width", 0), setattr(m, "height", 0)), "empty image"),
        (lambda m: setattr(m, "step", 5), "step"),
        (lambda m: setattr(m, "data", m.data[: len(m.data) // 2]), "truncated"),
    ],
)
def test_bad_frames_raise_clear_errors(mutate, message: str) -> None:
    msg = array_to_image(random_pixels("rgb8"), "rgb8")
    mutate(msg)
    with pytest.raises(ImageConversionError, match=message):
        image_to_array(msg)


def test_array_to_image_rejects_mismatched_arrays() -> None:
    with pytest.raises(ImageConversionError):
        array_to_image(np.zeros((4, 4, 3), np.uint16), "rgb8")
    with pytest.raises(ImageConversionError):
        array_to_image(np.zeros((4, 4), np.uint8), "rgb8")


# ----- guards (issue 22): byte order by hand, native dtypes, 16-bit colour channel order --------------------------
@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "rgb16", "bgr16", "32FC1"])
@pytest.mark.parametrize("big_endian", [False, True])
def test_multibyte_pixels_come_back_native(encoding: str, big_endian: bool) -> None:
    """Whatever the message's byte order, the array has the machine's byte order (torch, cv2 need it)."""
    pixels = random_pixels(encoding, height=3, width=4)
    back = image_to_array(padded_message(pixels, encoding, pad=2, big_endian=big_endian))
    assert back.dtype == ENCODINGS[encoding].dtype and back.dtype.isnative
    np.testing.assert_array_equal(back, pixels)


def test_big_endian_bytes_by_hand() -> None:
    # Two 16-bit pixels stored as 01 02 | A0 0B: big-endian 0x0102 = 258 and 0xA00B = 40971, little-endian 513, 2976.
    msg = Image(height=1, width=2, encoding="mono16", step=4)
    msg.data = array.array("B", [0x01, 0x02, 0xA0, 0x0B])
    msg.is_bigendian = True
    assert image_to_array(msg).tolist() == [[258, 40971]]
    assert to_rgb8(msg)[0].tolist() == [[1, 1, 1], [160, 160, 160]]  # 16 → 8 bits keeps the high byte
    msg.is_bigendian = False
    assert image_to_array(msg).tolist() == [[513, 2976]]
    assert to_rgb8(msg)[0].tolist() == [[2, 2, 2], [11, 11, 11]]


@pytest.mark.parametrize("big_endian", [False, True])
def test_rgb16_and_bgr16_channel_order(big_endian: bool) -> None:
    channels = np.array([[[0x1180, 0x22FF, 0x3301]]], np.uint16)  # high bytes 0x11, 0x22, 0x33
    as_rgb = to_rgb8(padded_message(channels, "rgb16", pad=0, big_endian=big_endian))
    as_bgr = to_rgb8(padded_message(channels, "bgr16", pad=0, big_endian=big_endian))
    assert as_rgb.tolist() == [[[0x11, 0x22, 0x33]]]
    assert as_bgr.tolist() == [[[0x33, 0x22, 0x11]]]
    assert as_rgb.flags.c_contiguous and as_bgr.flags.c_contiguous


def test_last_row_may_omit_its_padding_but_not_pixels() -> None:
    pixels = random_pixels("rgb16", height=3, width=4)
    msg = padded_message(pixels, "rgb16", pad=6, big_endian=True)
    msg.data = msg.data[:-6]  # step × (H − 1) + row bytes: complete
    np.testing.assert_array_equal(image_to_array(msg), pixels)
    msg.data = msg.data[:-1]
    expected = r"truncated image data: 83 bytes for 4x3 rgb16 with step 30 \(needs 84"  # 30 × 2 + 24
    with pytest.raises(ImageConversionError, match=expected):
        image_to_array(msg)


def test_step_equal_to_the_row_size_is_enough() -> None:
    pixels = random_pixels("mono16", height=2, width=3)
    msg = padded_message(pixels, "mono16", pad=0, big_endian=False)
    assert msg.step == 6
    np.testing.assert_array_equal(image_to_array(msg), pixels)
    msg.step = 5
    with pytest.raises(ImageConversionError, match=r"step 5 is smaller than width\*channels\*bytes = 3\*1\*2 = 6"):
        image_to_array(msg)


def test_float_image_without_finite_pixels_is_black_and_constant_is_black() -> None:
    assert not to_rgb8(array_to_image(np.full((2, 3), np.nan, np.float32), "32FC1")).any()
    assert not to_rgb8(array_to_image(np.full((2, 3), 4.5, np.float32), "32FC1")).any()


def test_single_channel_arrays_with_a_trailing_axis_are_accepted() -> None:
    pixels = random_pixels("mono8", height=3, width=2)
    msg = array_to_image(pixels[:, :, None], "mono8")
    assert (msg.height, msg.width, msg.step) == (3, 2, 2)
    np.testing.assert_array_equal(image_to_array(msg), pixels)


# ----- guards from mutation testing (scripts/mutate.sh image_conversion) ------------------------------------------
def test_messages_name_the_problem() -> None:
    msg = array_to_image(random_pixels("rgb8"), "rgb8")
    msg.encoding = "weird42"
    with pytest.raises(ImageConversionError, match=r"'weird42'; supported: rgb8, bgr8, rgba8, bgra8, rgb16"):
        image_to_array(msg)
    with pytest.raises(ImageConversionError, match=r"array of shape \(4, 4, 3\) does not fit encoding rgba8"):
        array_to_image(np.zeros((4, 4, 3), np.uint8), "rgba8")  # channel count mismatch
    with pytest.raises(ImageConversionError, match=r"array dtype uint16 does not fit encoding rgb8 \(uint8\)"):
        array_to_image(np.zeros((4, 4, 3), np.uint16), "rgb8")


@pytest.mark.parametrize(("width", "height"), [(0, 4), (4, 0)])
def test_zero_width_or_height_is_an_empty_image(width: int, height: int) -> None:
    msg = Image(height=height, width=width, encoding="mono8", step=width)
    msg.data = array.array("B", bytes(16))
    with pytest.raises(ImageConversionError, match=f"empty image: {width}x{height} pixels"):
        image_to_array(msg)


def test_byte_order_flag_does_not_matter_for_8_bit_data() -> None:
    """A big-endian driver's bgr8 frame is still served zero-copy (one-byte channels have no byte order)."""
    pixels = random_pixels("bgr8", 4, 5)
    msg = padded_message(pixels, "bgr8", pad=3, big_endian=True)
    view = image_to_array(msg)
    np.testing.assert_array_equal(view, pixels)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))


def test_array_to_image_states_the_machine_byte_order() -> None:
    import sys

    msg = array_to_image(random_pixels("mono16"), "mono16")
    assert msg.is_bigendian is (sys.byteorder == "big")


def test_float_image_with_a_small_range_uses_the_full_scale() -> None:
    depth = np.array([[0.5, 0.6], [0.9, np.nan]], np.float32)  # range 0.4 m
    grey = to_rgb8(array_to_image(depth, "32FC1"))[:, :, 0]
    assert grey.tolist() == [[0, int(0.1 / 0.4 * 255)], [255, 0]]
