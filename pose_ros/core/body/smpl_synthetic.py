"""A synthetic SMPL-format model with the real array shapes, for tests and benchmarks (SMPL itself is licensed).

The mesh is a closed, outward-oriented triangulation of 6890 points on an ellipsoid of human size (1.7 m tall),
so it has exactly 2V - 4 = 13776 faces like SMPL. Joints sit on a rough T-pose skeleton with SMPL's real kinematic
tree; skinning weights and the joint regressor are smooth, non-negative and sum to one; shape and pose blendshapes
are random. Every array holds float32-representable values, so float32 round trips (as in `smplx`) are exact.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull

from pose_ros.core.body.smpl_files import SmplModelData
from pose_ros.core.skeletons import SMPL24_PARENTS

SMPL_NUM_VERTICES = 6890
SMPL_NUM_FACES = 13776
SMPL_NUM_JOINTS = 24
SMPL_NUM_BETAS = 10

# Rough rest-pose joint locations (metres, y up, x to the body's left) in SMPL's joint order.
# fmt: off
_SKELETON_XYZ = np.array(
    [
        [0.0, 0.0, 0.0], [0.06, -0.09, 0.0], [-0.06, -0.09, 0.0], [0.0, 0.11, -0.02], [0.1, -0.47, 0.0],
        [-0.1, -0.47, 0.0], [0.0, 0.24, 0.0], [0.08, -0.87, -0.04], [-0.08, -0.87, -0.04], [0.0, 0.29, 0.02],
        [0.12, -0.93, 0.08], [-0.12, -0.93, 0.08], [0.0, 0.51, -0.01], [0.08, 0.4, -0.01], [-0.08, 0.4, -0.01],
        [0.0, 0.6, 0.04], [0.18, 0.43, -0.02], [-0.18, 0.43, -0.02], [0.44, 0.41, -0.04], [-0.44, 0.41, -0.04],
        [0.69, 0.42, -0.04], [-0.69, 0.42, -0.04], [0.78, 0.41, -0.05], [-0.78, 0.41, -0.05],
    ]
)
# fmt: on


def _ellipsoid_mesh(rng: np.random.Generator, num_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Closed triangulation of random points on an ellipsoid: vertices (V, 3) m, outward faces (2V - 4, 3)."""
    directions = rng.normal(size=(num_vertices, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    faces = ConvexHull(directions).simplices.astype(np.int64)
    corners = directions[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    inward = (normals * corners.mean(axis=1)).sum(axis=1) < 0
    faces[inward] = faces[inward][:, ::-1]
    vertices = directions * np.array([0.8, 0.85, 0.15]) + np.array([0.0, -0.15, 0.0])
    return vertices, faces


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def _float32_exact(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float32).astype(np.float64)


def make_synthetic_smpl(seed: int = 0, num_betas: int = SMPL_NUM_BETAS) -> SmplModelData:
    """Random but valid SMPL-format model: v_template (6890, 3), shapedirs (6890, 3, S), posedirs (6890, 3, 207),
    J_regressor (24, 6890), weights (6890, 24), parents = SMPL's tree, faces (13776, 3)."""
    rng = np.random.default_rng(seed)
    vertices, faces = _ellipsoid_mesh(rng, SMPL_NUM_VERTICES)
    distances = np.linalg.norm(vertices[:, None, :] - _SKELETON_XYZ[None], axis=2)  # (V, J)
    weights = _softmax_rows(-distances / 0.05)
    regressor = _softmax_rows(-distances.T / 0.03)  # each joint: a smooth average of the vertices near it
    data = SmplModelData(
        v_template=_float32_exact(vertices),
        shapedirs=_float32_exact(rng.normal(scale=0.01, size=(SMPL_NUM_VERTICES, 3, num_betas))),
        posedirs=_float32_exact(rng.normal(scale=0.002, size=(SMPL_NUM_VERTICES, 3, 9 * (SMPL_NUM_JOINTS - 1)))),
        j_regressor=_float32_exact(regressor),
        weights=_float32_exact(weights),
        parents=np.array(SMPL24_PARENTS, np.int64),
        faces=faces,
    )
    data.validate("synthetic SMPL model")
    return data
