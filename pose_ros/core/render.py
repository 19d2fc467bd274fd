"""Draw triangle meshes over an image: pinhole projection, flat shading, painter's algorithm, alpha blending.

Meant for pictures and debugging (e.g. fitted body meshes over a video frame), not for speed: one OpenCV polygon
fill per triangle, about a second for a few full-resolution bodies on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_SUBPIXEL_BITS = 4  # fixed-point precision of the polygon corners given to OpenCV


@dataclass
class Mesh:
    """A mesh in the camera optical frame: vertices (V, 3) m (z forward, all drawn vertices with z > 0), faces
    (F, 3) vertex indices, colour (3,) RGB in [0, 255]."""

    vertices: np.ndarray
    faces: np.ndarray
    color: tuple[int, int, int]


def face_shading(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Flat-shading factor (F,) in [0.25, 1] per face: |cos| of the angle between its normal and the ray from the
    camera to its centre (two-sided, so the winding order does not matter), plus ambient light."""
    corners = vertices[faces]  # (F, 3, 3)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    rays = corners.mean(axis=1)
    cosine = np.abs((normals * rays).sum(1)) / np.maximum(
        np.linalg.norm(normals, axis=1) * np.linalg.norm(rays, axis=1), 1e-12
    )
    return 0.25 + 0.75 * cosine


def render_meshes(
    image_rgb: np.ndarray, meshes: list[Mesh], camera_matrix: np.ndarray, alpha: float = 0.75
) -> np.ndarray:
    """The image (H, W, 3) uint8 with the meshes drawn over it, nearest surfaces on top, blended with `alpha`.

    All faces of all meshes are sorted by the depth of their centre and filled far to near (painter's algorithm);
    faces with a corner behind the camera (z ≤ 1 cm) are skipped. Returns a new image.
    """
    layer = image_rgb.copy()
    covered = np.zeros(image_rgb.shape[:2], np.uint8)
    polygons, colors, depths = [], [], []
    for mesh in meshes:
        vertices = np.asarray(mesh.vertices, np.float64)
        faces = np.asarray(mesh.faces, np.int64)
        faces = faces[(vertices[faces, 2] > 0.01).all(axis=1)]
        if len(faces) == 0:
            continue
        z = vertices[:, 2:3]
        pixels = (vertices[:, :2] / np.where(z > 0.01, z, 1.0)) * camera_matrix[[0, 1], [0, 1]] + camera_matrix[:2, 2]
        polygons.append(np.round(pixels[faces] * (1 << _SUBPIXEL_BITS)).astype(np.int32))
        colors.append(face_shading(vertices, faces)[:, None] * np.asarray(mesh.color, np.float64))
        depths.append(vertices[faces, 2].mean(axis=1))
    if not polygons:
        return layer
    all_polygons, all_colors = np.concatenate(polygons), np.concatenate(colors)
    for index in np.argsort(-np.concatenate(depths), kind="stable"):
        color = tuple(int(c) for c in all_colors[index])
        cv2.fillConvexPoly(layer, all_polygons[index], color, cv2.LINE_AA, _SUBPIXEL_BITS)
        cv2.fillConvexPoly(covered, all_polygons[index], 255, cv2.LINE_8, _SUBPIXEL_BITS)
    weight = (covered[..., None] / 255.0) * alpha
    return np.round(image_rgb * (1 - weight) + layer * weight).astype(np.uint8)
