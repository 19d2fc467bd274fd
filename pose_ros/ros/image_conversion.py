"""sensor_msgs/Image ⇄ numpy without cv_bridge.

`image_to_array` returns a zero-copy view of the message buffer whenever the byte order matches the
machine (it honours `step` row padding through strides); `to_rgb8` turns any supported encoding into the
(H, W, 3) uint8 RGB array the estimators take; `array_to_image` builds a message from an array.
Errors are `ImageConversionError` (a ValueError) with a message that says what is wrong with the frame.
"""

from __future__ import annotations

import array
import sys
from dataclasses import dataclass

import cv2
import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header


class ImageConversionError(ValueError):
    """The image message cannot be interpreted (unknown encoding, inconsistent size, truncated data)."""


@dataclass(frozen=True)
class EncodingInfo:
    """How pixels of one encoding are stored: numpy dtype of a channel and channels per pixel."""

    dtype: np.dtype
    channels: int


# Channels per pixel for the packed YUV 4:2:2 encodings are given per pixel pair as 2 bytes per pixel.
ENCODINGS: dict[str, EncodingInfo] = {
    "rgb8": EncodingInfo(np.dtype(np.uint8), 3),
    "bgr8": EncodingInfo(np.dtype(np.uint8), 3),
    "rgba8": EncodingInfo(np.dtype(np.uint8), 4),
    "bgra8": EncodingInfo(np.dtype(np.uint8), 4),
    "rgb16": EncodingInfo(np.dtype(np.uint16), 3),
    "bgr16": EncodingInfo(np.dtype(np.uint16), 3),
    "mono8": EncodingInfo(np.dtype(np.uint8), 1),
    "mono16": EncodingInfo(np.dtype(np.uint16), 1),
    "8UC1": EncodingInfo(np.dtype(np.uint8), 1),
    "8UC3": EncodingInfo(np.dtype(np.uint8), 3),
    "8UC4": EncodingInfo(np.dtype(np.uint8), 4),
    "16UC1": EncodingInfo(np.dtype(np.uint16), 1),
    "32FC1": EncodingInfo(np.dtype(np.float32), 1),
    "uyvy": EncodingInfo(np.dtype(np.uint8), 2),
    "yuv422": EncodingInfo(np.dtype(np.uint8), 2),  # UYVY byte order (ROS naming)
    "yuyv": EncodingInfo(np.dtype(np.uint8), 2),
    "yuv422_yuy2": EncodingInfo(np.dtype(np.uint8), 2),  # YUYV byte order
}
SUPPORTED_ENCODINGS = tuple(ENCODINGS)
_MACHINE_IS_BIG_ENDIAN = sys.byteorder == "big"
_YUV_TO_RGB = {
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "yuyv": cv2.COLOR_YUV2RGB_YUYV,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUYV,
}


def encoding_info(encoding: str) -> EncodingInfo:
    """Storage of `encoding`; raises ImageConversionError for an unsupported one."""
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ImageConversionError(
            f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        ) from None


def image_to_array(msg: Image) -> np.ndarray:
    """Pixels of `msg` as (H, W, C) or, for one channel, (H, W) with the encoding's dtype.

    Zero-copy (a view of msg.data) unless the data's byte order differs from the machine's.
    Packed YUV 4:2:2 comes back as (H, W, 2) uint8, to be converted by `to_rgb8`.
    """
    info = encoding_info(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ImageConversionError(f"empty image: {width}x{height} pixels")
    row_bytes = width * info.channels * info.dtype.itemsize
    if step < row_bytes:
        raise ImageConversionError(
            f"step {step} is smaller than width*channels*bytes = {width}*{info.channels}*{info.dtype.itemsize} "
            f"= {row_bytes} for encoding {msg.encoding}"
        )
    buffer = memoryview(msg.data).cast("B") if not isinstance(msg.data, bytes | bytearray) else msg.data
    needed = step * (height - 1) + row_bytes
    if len(buffer) < needed:
        raise ImageConversionError(
            f"truncated image data: {len(buffer)} bytes for {width}x{height} {msg.encoding} with step {step} "
            f"(needs {needed}: step × (height − 1) + one row)"
        )
    dtype = info.dtype.newbyteorder(">" if msg.is_bigendian else "<") if info.dtype.itemsize > 1 else info.dtype
    pixels = np.ndarray(
        shape=(height, width, info.channels),
        dtype=dtype,
        buffer=buffer,
        strides=(step, info.channels * info.dtype.itemsize, info.dtype.itemsize),
    )
    if info.dtype.itemsize > 1 and bool(msg.is_bigendian) != _MACHINE_IS_BIG_ENDIAN:
        pixels = pixels.astype(info.dtype.newbyteorder("="))
    return pixels[:, :, 0] if info.channels == 1 else pixels


def _gray_to_uint8(gray: np.ndarray) -> np.ndarray:
    """Scale a one-channel image of any dtype to uint8 (16-bit: >> 8; float: min-max over finite pixels)."""
    if gray.dtype == np.uint8:
        return gray
    if gray.dtype == np.uint16:
        return (gray >> 8).astype(np.uint8)
    finite = np.isfinite(gray)
    if not finite.any():
        return np.zeros(gray.shape, np.uint8)
    lo, hi = float(gray[finite].min()), float(gray[finite].max())
    scaled = (np.where(finite, gray, lo) - lo) * (255.0 / max(hi - lo, 1e-12))
    return scaled.astype(np.uint8)


def to_rgb8(msg: Image) -> np.ndarray:
    """Any supported image as (H, W, 3) uint8 RGB (a new C-contiguous array unless already rgb8 contiguous)."""
    pixels = image_to_array(msg)
    encoding = msg.encoding
    if encoding in _YUV_TO_RGB:
        return cv2.cvtColor(np.ascontiguousarray(pixels), _YUV_TO_RGB[encoding])
    if pixels.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(_gray_to_uint8(pixels)), cv2.COLOR_GRAY2RGB)
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    if encoding.startswith("bgr"):
        pixels = pixels[:, :, 2::-1]
    return np.ascontiguousarray(pixels[:, :, :3])


def array_to_image(pixels: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """Message holding `pixels` ((H, W) or (H, W, C), dtype matching `encoding`), rows packed (step = row bytes)."""
    info = encoding_info(encoding)
    expected_ndim = 2 if info.channels == 1 else 3
    if pixels.ndim == 3 and info.channels == 1 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim != expected_ndim or (expected_ndim == 3 and pixels.shape[2] != info.channels):
        raise ImageConversionError(f"array of shape {pixels.shape} does not fit encoding {encoding}")
    if pixels.dtype != info.dtype:
        raise ImageConversionError(f"array dtype {pixels.dtype} does not fit encoding {encoding} ({info.dtype})")
    pixels = np.ascontiguousarray(pixels)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = _MACHINE_IS_BIG_ENDIAN
    msg.step = int(pixels.strides[0])
    msg.data = array.array("B", pixels.tobytes())
    return msg
