"""Synthetic Anny scenes with known answers, for test/test_anny_fit.py and bench/bench_anny_fit.py: random people
in front of a 768×576 camera, their exact COCO-17 keypoints, small motions between frames, and 3D error measures."""

from __future__ import annotations

import math

import numpy as np
import torch

from pose_ros.core.body.anny_body import HINGES, OPTICAL_FROM_ANNY, AnnyBody
from pose_ros.core.body.anny_fit import AnnyState
from pose_ros.core.camera import default_camera_matrix, project
from pose_ros.core.person import Person
from pose_ros.core.skeletons import COCO17

WIDTH, HEIGHT = 768, 576
CAMERA = default_camera_matrix(WIDTH, HEIGHT)


def random_states(body: AnnyBody, rng: np.random.Generator, count: int) -> list[AnnyState]:
    """Plausible random people 4-7 m in front of the camera: bones ~ 0.25 rad, elbows/knees flexed 0-1.2 rad,
    phenotypes in [0.2, 0.8], turned up to ±57° about the vertical."""
    states = []
    axes = body.hinge_axes.double().numpy()
    for _ in range(count):
        bones = rng.normal(0.0, 0.25, (len(body.bones), 3))
        for i, name in enumerate(body.bones):
            if name in HINGES:
                bones[i] = axes[i] * abs(rng.normal(0.6, 0.3))
        yaw = rng.uniform(-1.0, 1.0)
        turn = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
        translation = np.array([rng.uniform(-1.0, 1.0), rng.uniform(-0.3, 0.3), rng.uniform(4.0, 7.0)])
        states.append(AnnyState(turn @ OPTICAL_FROM_ANNY, translation, bones, rng.uniform(0.2, 0.8, 6)))
    return states


def render(body: AnnyBody, states: list[AnnyState]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """True COCO-17 keypoints of each state: (17, 3) m in the camera frame and (17, 2) px through CAMERA."""
    bones = torch.tensor(np.stack([s.bones for s in states]), dtype=body.dtype)
    phenotypes = torch.tensor(np.stack([s.phenotypes for s in states]), dtype=body.dtype)
    with torch.no_grad():
        keypoints = body.keypoints(bones, body.shape(phenotypes)).double().numpy()
    points = [k @ s.rotation.T + s.translation for k, s in zip(keypoints, states, strict=True)]
    return points, [project(p, CAMERA) for p in points]


def make_people(pixels: list[np.ndarray], tracked: bool = True) -> list[Person]:
    return [
        Person(xy.astype(np.float32), np.ones(17, np.float32), 1.0, np.zeros(4, np.float32), COCO17.name, i, tracked)
        for i, xy in enumerate(pixels)
    ]


def errors(people: list[Person], points: list[np.ndarray], pixels: list[np.ndarray]) -> tuple[float, float, float]:
    """Median 2D reprojection error (px) of the fitted keypoints, and median 3D joint errors (mm) after aligning the
    hip centres, then also the scale (size and depth along the viewing ray trade off in 2D keypoints alone)."""
    error_2d, error_3d, error_scaled = [], [], []
    for person, true_points, true_pixels in zip(people, points, pixels, strict=True):
        fitted = person.keypoints_3d.astype(np.float64)
        error_2d.append(np.linalg.norm(project(fitted, CAMERA) - true_pixels, axis=1))
        centred, truth = fitted - fitted[11:13].mean(0), true_points - true_points[11:13].mean(0)
        error_3d.append(1000 * np.linalg.norm(centred - truth, axis=1))
        scale = (centred * truth).sum() / (centred * centred).sum()
        error_scaled.append(1000 * np.linalg.norm(scale * centred - truth, axis=1))
    return tuple(float(np.median(np.concatenate(e))) for e in (error_2d, error_3d, error_scaled))


def move(states: list[AnnyState], rng: np.random.Generator) -> None:
    """One frame of motion: every bone turns by ~3° per axis, the body shifts by ~2 cm."""
    for state in states:
        state.bones = state.bones + rng.normal(0.0, 0.03, state.bones.shape)
        state.translation = state.translation + rng.normal(0.0, 0.02, 3)
