"""Crops for top-down pose: box -> affine with the model's aspect ratio and padding, batched sampling, exact
back-mapping (known transforms: pure translation, scaling, a rotation and a flip), and NMS/IoU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pose_ros.core.boxes import box_iou
from pose_ros.core.estimators.centernet import non_maximum_suppression
from pose_ros.core.estimators.crops import boxes_to_crop_transforms, crop_to_image, sample_crops


def _ramp_image(height: int = 60, width: int = 80) -> np.ndarray:
    """(H, W, 3) float: channel 0 = x, channel 1 = y, channel 2 = x * y (bilinear is exact on the first two)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack([x, y, x * y], axis=-1)


def _affine(scale: float, angle: float, flip: bool, translation: tuple[float, float]) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    linear = scale * np.array([[c, -s], [s, c]]) @ np.diag([-1.0 if flip else 1.0, 1.0])
    return np.concatenate([linear, np.array(translation)[:, None]], axis=1)


def test_box_transform_keeps_centre_aspect_and_padding() -> None:
    boxes = np.array([[10.0, 20.0, 50.0, 140.0], [0.0, 0.0, 90.0, 30.0]])  # tall, wide
    A = boxes_to_crop_transforms(boxes, (256, 192), padding=1.25)
    assert A.shape == (2, 2, 3)
    assert np.allclose(A[:, 0, 1], 0) and np.allclose(A[:, 1, 0], 0), "no rotation"
    assert np.allclose(A[:, 0, 0], A[:, 1, 1]), "same scale along x and y: people keep their proportions"
    # crop edges (-0.5 .. size - 0.5) map to a box centred on the detection, 1.25 × the aspect-fitted box
    corners = crop_to_image(np.array([[[-0.5, -0.5], [191.5, 255.5]]] * 2), A)
    centres = (corners[:, 0] + corners[:, 1]) / 2
    np.testing.assert_allclose(centres, [[30.0, 80.0], [45.0, 15.0]], atol=1e-4)
    sizes = corners[:, 1] - corners[:, 0]
    np.testing.assert_allclose(sizes[0], [120 * 192 / 256 * 1.25, 120 * 1.25], rtol=1e-6)  # height decides
    np.testing.assert_allclose(sizes[1], [90 * 1.25, 90 * 256 / 192 * 1.25], rtol=1e-6)  # width decides
    with pytest.raises(ValueError, match="padding"):
        boxes_to_crop_transforms(boxes, (256, 192), padding=0.9)


def test_integer_translation_crop_equals_slicing() -> None:
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3)).astype(np.uint8)
    A = _affine(1.0, 0.0, False, (7.0, 5.0))[None]
    crops = sample_crops(torch.from_numpy(image), A, (20, 30))
    assert crops.shape == (1, 20, 30, 3) and crops.dtype == torch.float32
    # float32 grid coordinates: ~1e-6 relative error in the sampling position, times gradients up to 255
    np.testing.assert_allclose(crops[0].numpy(), image[5:25, 7:37].astype(np.float32), atol=2e-3)


@pytest.mark.parametrize(
    ("scale", "angle", "flip"),
    [(1.0, 0.0, False), (0.37, 0.0, False), (1.6, 0.0, False), (0.8, 0.6, False), (0.9, 0.0, True), (1.2, -2.0, True)],
)
def test_sampled_crop_and_back_mapping_agree_for_known_transforms(scale, angle, flip) -> None:
    """Crop pixel (u, v) holds the image at A @ (u, v, 1): on a ramp image the sampled x/y channels ARE the
    back-mapped coordinates, for scaling, rotation and flips alike (inside the image)."""
    image = _ramp_image()
    transforms = np.stack([_affine(scale, angle, flip, (40.0, 30.0)), _affine(1.0, 0.0, False, (3.25, 2.5))])
    crops = sample_crops(torch.from_numpy(image), transforms, (12, 16)).numpy()
    v, u = np.mgrid[0:12, 0:16].astype(np.float64)
    grid = np.stack([u, v], axis=-1).reshape(1, -1, 2).repeat(2, axis=0)
    mapped = crop_to_image(grid, transforms).reshape(2, 12, 16, 2)
    inside = (mapped[..., 0] >= 0) & (mapped[..., 0] <= 79) & (mapped[..., 1] >= 0) & (mapped[..., 1] <= 59)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(crops[..., :2][inside], mapped[inside], atol=2e-3)


def test_a_bright_pixel_is_found_back_at_its_image_position() -> None:
    """Argmax in the crop of a single bright pixel, mapped back, is that pixel (scaling 1/2: exact cell)."""
    image = np.zeros((100, 120, 3), np.uint8)
    image[63, 41] = 255
    A = boxes_to_crop_transforms(np.array([[20.0, 30.0, 80.0, 90.0]]), (120, 120), padding=1.0)  # 0.5 px / px
    crop = sample_crops(torch.from_numpy(image), A, (120, 120))[0, :, :, 0].numpy()
    v, u = np.unravel_index(np.argmax(crop), crop.shape)
    back = crop_to_image(np.array([[[u, v]]], np.float64), A)[0, 0]
    np.testing.assert_allclose(back, [41, 63], atol=0.25)


def test_no_boxes_gives_an_empty_batch() -> None:
    crops = sample_crops(torch.zeros(10, 10, 3), np.zeros((0, 2, 3)), (8, 8))
    assert crops.shape == (0, 8, 8, 3)


def test_nms_drops_overlapping_duplicates_only() -> None:
    boxes = np.array([[0, 0, 10, 20], [1, 0, 11, 20], [30, 0, 40, 20], [0, 0, 10, 4]], np.float64)
    scores = np.array([0.5, 0.9, 0.4, 0.3])
    np.testing.assert_allclose(box_iou(boxes[:1], boxes[1:2]), [[180 / 220]])
    assert box_iou(boxes[:1], boxes[2:3])[0, 0] == 0
    assert non_maximum_suppression(boxes, scores, 0.5).tolist() == [1, 2, 3]
    assert non_maximum_suppression(boxes, scores, 0.9).tolist() == [1, 0, 2, 3]
