"""Image topics the way image_transport names them: raw `<topic>` or compressed `<topic>/compressed`.

image_transport resolves the base topic first (namespace, remapping) and appends the transport's suffix, so
remapping `image` moves `image/compressed` along with it. `create_image_subscription` subscribes to one of the
two (sensor_msgs/Image or sensor_msgs/CompressedImage, both converted by image_conversion.message_to_rgb8);
`ImageOutput` publishes an image on `<topic>` and/or `<topic>/compressed`, each built only for its listeners.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from pose_ros.ros.image_conversion import array_to_image, rgb8_to_compressed

IMAGE_TRANSPORTS = ("raw", "compressed")  # what a subscriber takes
OUTPUT_TRANSPORTS = ("raw", "compressed", "both")  # what a publisher offers


def transport_topic(node: Node, base_topic: str, transport: str) -> str:
    """The topic carrying `base_topic` with `transport`: raw → `base_topic` as given; compressed →
    the fully resolved (remapped) base topic + "/compressed", as image_transport names it."""
    if transport == "raw":
        return base_topic
    if transport == "compressed":
        return node.resolve_topic_name(base_topic).rstrip("/") + "/compressed"
    raise ValueError(f"unknown image transport {transport!r}; use one of: {', '.join(IMAGE_TRANSPORTS)}")


def create_image_subscription(
    node: Node, base_topic: str, transport: str, callback: Callable, qos: QoSProfile, **kwargs
):
    """Subscribe `callback` to `base_topic` as sensor_msgs/Image (raw) or to `<resolved base>/compressed` as
    sensor_msgs/CompressedImage (compressed). Extra keyword arguments go to `node.create_subscription`."""
    message_type = CompressedImage if transport == "compressed" else Image
    return node.create_subscription(message_type, transport_topic(node, base_topic, transport), callback, qos, **kwargs)


class ImageOutput:
    """An output image on `<topic>` (Image), `<topic>/compressed` (CompressedImage, JPEG) or both.

    `get_subscription_count()` counts the listeners on any of them; `publish_rgb(pixels, header)` builds the
    raw message only when the raw topic has listeners and JPEG-encodes the pixels only when the compressed one
    has. `create_publisher` is the node's (lifecycle) publisher factory.
    """

    def __init__(
        self,
        node: Node,
        base_topic: str,
        transport: str,
        qos: QoSProfile,
        create_publisher: Callable | None = None,
        jpeg_quality: int = 90,
    ) -> None:
        if transport not in OUTPUT_TRANSPORTS:
            raise ValueError(f"unknown output transport {transport!r}; use one of: {', '.join(OUTPUT_TRANSPORTS)}")
        create = create_publisher or node.create_publisher
        self._node = node
        self.jpeg_quality = int(jpeg_quality)
        self.raw = create(Image, base_topic, qos) if transport in ("raw", "both") else None
        self.compressed = (
            create(CompressedImage, transport_topic(node, base_topic, "compressed"), qos)
            if transport in ("compressed", "both")
            else None
        )

    @property
    def publishers(self) -> list:
        return [p for p in (self.raw, self.compressed) if p is not None]

    def get_subscription_count(self) -> int:
        return sum(p.get_subscription_count() for p in self.publishers)

    def publish_rgb(self, rgb: np.ndarray, header: Header) -> None:
        """Publish (H, W, 3) uint8 RGB pixels as an rgb8 Image on the raw topic and JPEG-encoded on the compressed
        one, each only where something listens."""
        if self.raw is not None and self.raw.get_subscription_count() > 0:
            self.raw.publish(array_to_image(rgb, "rgb8", header))
        if self.compressed is not None and self.compressed.get_subscription_count() > 0:
            self.compressed.publish(rgb8_to_compressed(rgb, header, "jpeg", self.jpeg_quality))

    def destroy(self) -> None:
        for publisher in self.publishers:
            self._node.destroy_publisher(publisher)
        self.raw = self.compressed = None
