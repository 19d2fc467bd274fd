"""sensor_msgs/Image and sensor_msgs/CompressedImage ⇄ numpy without cv_bridge.

`image_to_array` returns a zero-copy view of the message buffer whenever the byte order matches the
machine (it honours `step` row padding through strides); `to_rgb8` turns any supported encoding into the
(H, W, 3) uint8 RGB array the estimators take; `array_to_image` builds a message from an array.
`compressed_to_rgb8` decodes a CompressedImage (JPEG or PNG, as image_transport's `compressed` plugin writes
it) and `rgb8_to_compressed` encodes one; `message_to_rgb8` takes either message type.
Errors are `ImageConversionError` (a ValueError) with a message that says what is wrong with the frame.
"""

from __future__ import annotations

import array
import sys
from dataclasses import dataclass

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
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
            f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}; publish one of these "
            f"(bgr8 or rgb8 for colour), or JPEG/PNG on <image>/compressed with image_transport: compressed"
        ) from None


def data_bytes(msg: Image | CompressedImage) -> bytes | bytearray | memoryview:
    """The `data` field of an image message as bytes, without a copy (rclpy holds uint8[] as array.array)."""
    return msg.data if isinstance(msg.data, bytes | bytearray) else memoryview(msg.data).cast("B")


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
    buffer = data_bytes(msg)
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


def byte_array(pixels: np.ndarray) -> array.array:
    """The bytes of an array (any dtype, C order) as the array.array("B") a uint8[] message field holds, copied
    once (`array.array("B", pixels.tobytes())` copies twice and takes the items one by one: 40x slower)."""
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(pixels).reshape(-1).view(np.uint8))
    return data


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
    msg.data = byte_array(pixels)
    return msg


# ----- sensor_msgs/CompressedImage ---------------------------------------------------------------------------------
COMPRESSED_FORMATS = ("jpeg", "png")
_SIGNATURES = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}
_FORMAT_ALIASES = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png"}
_RGB_ORDER_TARGETS = ("rgb8", "rgba8", "rgb16", "rgba16")  # decoded channels already in RGB order


@dataclass(frozen=True)
class CompressedFormat:
    """A CompressedImage `format` field, parsed: "rgb8; jpeg compressed bgr8" → ("rgb8", "jpeg", "bgr8").

    `encoding` is the raw image's encoding before compression ("" when the field names only the codec, as in
    plain "jpeg"); `target` is the pixel layout that was compressed ("" when not given: OpenCV's BGR order).
    """

    encoding: str
    codec: str
    target: str


def parse_compressed_format(text: str, data: bytes | bytearray | memoryview = b"") -> CompressedFormat:
    """Parse image_transport's format field ("<encoding>; <codec> compressed [<target>]", or just "jpeg"/"png").

    An empty field is allowed: the codec is then recognised from the data's signature. Raises ImageConversionError
    for a codec other than jpeg/png (e.g. compressedDepth, h264, theora) or data that is not of the named codec.
    """
    field = text.strip()
    encoding, _, rest = field.partition(";") if ";" in field else ("", "", field)
    encoding, rest = encoding.strip(), rest.strip()
    words = rest.split()
    codec_word = words[0].lower() if words else ""
    target = words[2] if len(words) >= 3 and words[1] == "compressed" else ""
    head = bytes(data[:8])
    detected = next((name for name, signature in _SIGNATURES.items() if head.startswith(signature)), "")
    if not codec_word:
        if not detected:
            raise ImageConversionError(
                "compressed image with an empty format field whose data is neither JPEG nor PNG; "
                "publish jpeg or png (image_transport's compressed plugin), or subscribe to the raw topic "
                "(image_transport: raw)"
            )
        return CompressedFormat(encoding, detected, target)
    codec = _FORMAT_ALIASES.get(codec_word)
    if codec is None or (len(words) >= 2 and words[1] != "compressed"):
        hint = " (compressedDepth is for depth images)" if "compresseddepth" in field.lower() else ""
        raise ImageConversionError(
            f"unsupported compressed image format {text!r}{hint}; supported: jpeg, png "
            f"(e.g. 'bgr8; jpeg compressed bgr8'); republish as jpeg/png or raw and set image_transport accordingly"
        )
    if detected != codec:
        found = detected.upper() if detected else f"unknown data (first bytes {head[:4].hex()})"
        raise ImageConversionError(f"compressed image says {codec} in format {text!r} but holds {found}")
    return CompressedFormat(encoding, codec, target)


def compressed_to_rgb8(msg: CompressedImage) -> np.ndarray:
    """Decode a JPEG/PNG CompressedImage to (H, W, 3) uint8 RGB, honouring its `format` field.

    Grey images become three equal channels, 16-bit PNGs are scaled by >> 8, alpha is dropped. A `target`
    of rgb8/rgba8 in the format means the compressed pixels are in RGB order (else OpenCV's BGR order).
    """
    data = data_bytes(msg)
    if len(data) == 0:
        raise ImageConversionError(f"empty compressed image (format {msg.format!r}, 0 bytes)")
    layout = parse_compressed_format(msg.format, data)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.size == 0:
        raise ImageConversionError(
            f"cannot decode the {layout.codec} data ({len(data)} bytes, format {msg.format!r}): corrupt or truncated"
        )
    if decoded.dtype == np.uint16:
        decoded = (decoded >> 8).astype(np.uint8)
    elif decoded.dtype != np.uint8:
        raise ImageConversionError(f"decoded {layout.codec} has unsupported pixel type {decoded.dtype}")
    if decoded.ndim == 2 or decoded.shape[2] == 1:
        return cv2.cvtColor(decoded.reshape(decoded.shape[:2]), cv2.COLOR_GRAY2RGB)
    if layout.target in _RGB_ORDER_TARGETS:
        return np.ascontiguousarray(decoded[:, :, :3])
    code = cv2.COLOR_BGRA2RGB if decoded.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(decoded, code)


def viewable_jpeg(msg: CompressedImage) -> bytes | None:
    """The JPEG file in `msg` when any JPEG decoder (a browser) shows it in its true colours, else None.

    image_transport's JPEGs are compressed from OpenCV's BGR order ("<encoding>; jpeg compressed bgr8", or
    no target): standard files. A target in RGB order (e.g. "rgb8; jpeg compressed rgb8") swaps red and blue
    in other decoders; PNG and other codecs are not JPEG. Raises ImageConversionError as
    `parse_compressed_format` does for a bad format field.
    """
    data = data_bytes(msg)
    layout = parse_compressed_format(msg.format, data)
    if layout.codec != "jpeg" or layout.target in _RGB_ORDER_TARGETS:
        return None
    return bytes(data)


def rgb8_to_compressed(
    rgb: np.ndarray, header: Header | None = None, codec: str = "jpeg", jpeg_quality: int = 90
) -> CompressedImage:
    """CompressedImage of an (H, W, 3) uint8 RGB array, format "rgb8; <codec> compressed bgr8" as image_transport."""
    if codec not in COMPRESSED_FORMATS:
        raise ImageConversionError(f"cannot compress to {codec!r}; supported: {', '.join(COMPRESSED_FORMATS)}")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageConversionError(f"expected an (H, W, 3) uint8 RGB array, got {rgb.shape} {rgb.dtype}")
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if codec == "jpeg" else []
    ok, encoded = cv2.imencode(".jpg" if codec == "jpeg" else ".png", bgr, params)
    if not ok:
        raise ImageConversionError(f"OpenCV could not encode a {rgb.shape[1]}x{rgb.shape[0]} image as {codec}")
    msg = CompressedImage(format=f"rgb8; {codec} compressed bgr8")
    if header is not None:
        msg.header = header
    msg.data = byte_array(encoded)
    return msg


def message_to_rgb8(msg: Image | CompressedImage) -> np.ndarray:
    """(H, W, 3) uint8 RGB of either image message type (see `to_rgb8` and `compressed_to_rgb8`)."""
    return compressed_to_rgb8(msg) if isinstance(msg, CompressedImage) else to_rgb8(msg)
