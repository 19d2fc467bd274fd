"""HMR pre-processing and cameras: crop placement, ImageNet normalisation, crop camera → image translation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pose_ros.core.body.hmr import (
    IMAGENET_MEAN,
    crop_camera_to_translation,
    crop_person,
    crop_square,
    preprocess_crops,
    weak_perspective_to_translation,
)
from pose_ros.core.camera import project


def _coordinate_image(height: int = 480, width: int = 640) -> np.ndarray:
    """float32 image whose channels hold each pixel's own x and y (pixel centres at integers) and a constant 1."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([xs, ys, np.ones_like(xs)], axis=-1)


def test_crop_square_is_1_2_times_the_longer_side() -> None:
    center, side = crop_square(np.array([100.0, 50.0, 80.0, 200.0]))
    np.testing.assert_allclose(center, [140.0, 150.0])
    assert side == 240


@pytest.mark.parametrize("side", [112, 224, 448])
def test_crop_pixels_come_from_the_documented_image_locations(side: int) -> None:
    image = _coordinate_image()
    center = np.array([320.3, 240.7])
    crop = crop_person(image, center, side)
    assert crop.shape == (224, 224, 3)
    u = np.arange(1, 223)  # the outermost crop pixels of an upscale clamp to the region's edge
    expected = center[0] - side / 2 + (u + 0.5) * side / 224
    np.testing.assert_allclose(crop[100, u, 0], expected, atol=1e-3)
    expected_y = center[1] - side / 2 + (u + 0.5) * side / 224
    np.testing.assert_allclose(crop[u, 100, 1], expected_y, atol=1e-3)


def test_crop_outside_the_image_is_black() -> None:
    image = _coordinate_image()
    crop = crop_person(image, np.array([10.0, 240.0]), 224)  # box centred 10 px from the left edge
    assert np.all(crop[:, :90, 2] == 0)
    assert np.all(crop[:, 110:, 2] == 1)


def test_preprocess_normalises_with_imagenet_statistics() -> None:
    crops = np.zeros((2, 224, 224, 3), np.uint8)
    crops[0] = np.round(np.array(IMAGENET_MEAN) * 255).astype(np.uint8)
    crops[1] = 255
    images = preprocess_crops(crops)
    assert images.shape == (2, 3, 224, 224) and images.dtype == torch.float32
    assert images[0].abs().max().item() < 0.01  # the mean colour maps to ~0
    np.testing.assert_allclose(images[1, :, 0, 0].numpy(), (1 - np.array(IMAGENET_MEAN)) / [0.229, 0.224, 0.225], 1e-5)


def test_spin_crop_translation_convention() -> None:
    translation = weak_perspective_to_translation(np.array([[0.8, 0.1, -0.2]]))
    np.testing.assert_allclose(translation, [[0.1, -0.2, 2 * 5000 / (224 * 0.8)]])


def test_image_translation_reproduces_the_crop_projection() -> None:
    """The body origin projects exactly where the crop camera puts it; other body points to within perspective
    effects (body depth / distance)."""
    camera_matrix = np.array([[900.0, 0.0, 330.0], [0.0, 900.0, 235.0], [0.0, 0.0, 1.0]])
    crop_camera = np.array([[0.85, 0.05, 0.25], [1.1, -0.1, 0.0]])
    centers = np.array([[420.0, 260.0], [150.0, 300.0]])
    sides = np.array([300.0, 180.0])
    translations = crop_camera_to_translation(crop_camera, centers, sides, camera_matrix)
    assert np.all(translations[:, 2] > 0)
    half_scale = sides * crop_camera[:, 0] / 2
    origin_expected = centers + half_scale[:, None] * crop_camera[:, 1:]
    np.testing.assert_allclose(project(translations, camera_matrix), origin_expected, atol=1e-9)
    # Any body point X: the pinhole projection is the weak-perspective one scaled about the principal point by
    # T_z / (T_z + X_z) — the approximation error is exactly the body's depth relief, nothing else.
    rng = np.random.default_rng(0)
    body = rng.uniform([-0.4, -0.9, -0.15], [0.4, 0.9, 0.15], size=(50, 3))
    principal = camera_matrix[:2, 2]
    for index in range(2):
        weak = centers[index] + half_scale[index] * (body[:, :2] + crop_camera[index, 1:])
        perspective = project(body + translations[index], camera_matrix)
        depth = translations[index, 2]
        np.testing.assert_allclose(perspective - principal, (weak - principal) * (depth / (depth + body[:, 2:])))
    # With SPIN's own crop intrinsics (f = 5000 px over 224 px, box centred), it is SPIN's translation.
    spin_matrix = np.array([[5000.0, 0.0, 111.5], [0.0, 5000.0, 111.5], [0.0, 0.0, 1.0]])
    spin = crop_camera_to_translation(crop_camera, np.full((2, 2), 111.5), np.full(2, 224.0), spin_matrix)
    np.testing.assert_allclose(spin, weak_perspective_to_translation(crop_camera))
