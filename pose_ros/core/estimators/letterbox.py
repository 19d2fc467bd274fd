"""Letterbox preprocessing (resize keeping the aspect ratio, centred, zero padding) and its exact inverse.

Coordinates: image points use the pixel-centre convention of msg/Keypoint2D.msg (the centre of the top-left
pixel is (0, 0)); model outputs use TF's normalised convention (0 = left/top edge of the model input,
1 = right/bottom edge). cv2.resize with INTER_LINEAR maps pixel edges linearly (a destination pixel centre j
samples the source at (j + 0.5) / scale - 0.5), so the inverse below is exact, not approximate.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Letterbox:
    """Where an image of `image_size` (h, w) lands inside a model input of `input_size` (h, w).

    Attributes:
        scale_x, scale_y: resized width / image width and resized height / image height.
        pad_x, pad_y: zero columns left of / rows above the resized image, in input pixels.
        resized_size: (h, w) of the resized image inside the input.
    """

    image_size: tuple[int, int]
    input_size: tuple[int, int]
    resized_size: tuple[int, int]
    pad_x: int
    pad_y: int

    @classmethod
    def fit(cls, image_size: tuple[int, int], input_size: tuple[int, int]) -> Letterbox:
        """The largest aspect-preserving fit of `image_size` into `input_size`, centred."""
        (h, w), (in_h, in_w) = image_size, input_size
        if min(h, w, in_h, in_w) <= 0:
            raise ValueError(f"sizes must be positive, got image {image_size} and input {input_size}")
        scale = min(in_w / w, in_h / h)
        new_w, new_h = min(in_w, max(1, round(w * scale))), min(in_h, max(1, round(h * scale)))
        return cls((h, w), (in_h, in_w), (new_h, new_w), (in_w - new_w) // 2, (in_h - new_h) // 2)

    @property
    def scale_x(self) -> float:
        return self.resized_size[1] / self.image_size[1]

    @property
    def scale_y(self) -> float:
        return self.resized_size[0] / self.image_size[0]

    def apply(self, image: np.ndarray) -> np.ndarray:
        """(h, w, C) image -> (in_h, in_w, C), same dtype: bilinear resize, centred, zero padding."""
        if image.shape[:2] != self.image_size:
            raise ValueError(f"image is {image.shape[:2]}, this letterbox was fitted for {self.image_size}")
        (new_h, new_w), (in_h, in_w) = self.resized_size, self.input_size
        if (new_h, new_w) == self.image_size:
            resized = image
        else:  # cv2 drops a single channel axis: restore it
            resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR).reshape(new_h, new_w, -1)
        if (new_h, new_w) == (in_h, in_w):
            return np.ascontiguousarray(resized)
        out = np.zeros((in_h, in_w, resized.shape[2]), image.dtype)
        out[self.pad_y : self.pad_y + new_h, self.pad_x : self.pad_x + new_w] = resized
        return out

    def normalized_to_image(self, points_yx: np.ndarray) -> np.ndarray:
        """(..., 2) normalised (y, x) model coordinates -> (..., 2) image (x, y) pixels, pixel-centre convention."""
        in_h, in_w = self.input_size
        x = (points_yx[..., 1] * in_w - self.pad_x) / self.scale_x - 0.5
        y = (points_yx[..., 0] * in_h - self.pad_y) / self.scale_y - 0.5
        return np.stack([x, y], axis=-1).astype(np.float32)
