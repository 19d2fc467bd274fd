"""Mesh decimation by vertex clustering, planned once on a reference mesh and applied to every posed frame.

Why vertex clustering (Rossignac & Borrel, 1993) and not face subsampling: dropping faces leaves holes all over the
surface, whereas clustering merges nearby vertices into one and keeps a closed-looking, evenly coarser surface.
Why plan once: an SMPL mesh keeps its topology while it moves, so the clusters are chosen on the rest-pose template
(where limbs are apart) and each frame only averages the posed vertices of each cluster — a sparse (C × V) matrix
product, well under a millisecond — and the decimated mesh keeps the same faces from frame to frame (no flicker).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

_SEARCH_STEPS = 30


def _cluster(vertices: np.ndarray, faces: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid clustering with cubic cells of side `cell`: vertex → cluster id (V,), and the surviving faces (F', 3)
    in cluster ids (no degenerate faces, each triangle once, orientation of its first occurrence kept)."""
    cells = np.floor((vertices - vertices.min(axis=0)) / cell).astype(np.int64)
    extent = cells.max(axis=0) + 1
    keys = (cells[:, 0] * extent[1] + cells[:, 1]) * extent[2] + cells[:, 2]
    _, labels = np.unique(keys, return_inverse=True)
    merged = labels[faces]
    keep = (merged[:, 0] != merged[:, 1]) & (merged[:, 1] != merged[:, 2]) & (merged[:, 0] != merged[:, 2])
    merged = merged[keep]
    _, first = np.unique(np.sort(merged, axis=1), axis=0, return_index=True)
    return labels, merged[np.sort(first)]


class MeshDecimator:
    """Vertex-clustering plan for meshes with the topology of `faces`, chosen on `reference_vertices`.

    Args:
        reference_vertices: (V, 3) the mesh to plan on (e.g. the SMPL template), metres.
        faces: (F, 3) vertex indices.
        target_faces: upper bound on the faces kept; the grid cell is the smallest (binary search) that meets it.
    Attributes:
        faces: (F', 3) int64 faces of the decimated mesh, F' ≤ target_faces, indices into its C vertices.
        cell_size: grid cell side, in the reference mesh's units.
    """

    def __init__(self, reference_vertices: np.ndarray, faces: np.ndarray, target_faces: int) -> None:
        if target_faces < 1:
            raise ValueError(f"target_faces must be ≥ 1, got {target_faces}")
        vertices = np.asarray(reference_vertices, np.float64)
        faces = np.asarray(faces, np.int64)
        if target_faces >= len(faces):
            labels, kept, self.cell_size = np.arange(len(vertices)), faces, 0.0
        else:
            labels, kept, self.cell_size = self._search(vertices, faces, target_faces)
        used, compact = np.unique(kept, return_inverse=True)  # drop clusters that no face uses
        self.faces = compact.reshape(kept.shape).astype(np.int64)
        remap = np.full(labels.max() + 1, -1, np.int64)
        remap[used] = np.arange(len(used))
        rows = remap[labels]
        members = rows >= 0
        counts = np.bincount(rows[members], minlength=len(used)).astype(np.float64)
        self._average = scipy.sparse.csr_matrix(
            (1.0 / counts[rows[members]], (rows[members], np.flatnonzero(members))), shape=(len(used), len(vertices))
        )

    @staticmethod
    def _search(vertices: np.ndarray, faces: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray, float]:
        low, high = 0.0, float(np.ptp(vertices, axis=0).max())
        best = _cluster(vertices, faces, high)
        best_cell = high
        for _ in range(_SEARCH_STEPS):
            middle = (low + high) / 2
            labels, kept = _cluster(vertices, faces, middle)
            if len(kept) <= target:
                high, best, best_cell = middle, (labels, kept), middle
            else:
                low = middle
        return best[0], best[1], best_cell

    @property
    def num_vertices(self) -> int:
        return int(self._average.shape[0])

    def __call__(self, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posed vertices (V, 3) → decimated vertices (C, 3) (cluster means, same dtype) and faces (F', 3)."""
        return (self._average @ vertices).astype(vertices.dtype, copy=False), self.faces


def decimate_mesh(vertices: np.ndarray, faces: np.ndarray, target_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """One-off vertex clustering of a mesh (V, 3), (F, 3) to at most `target_faces` faces → (C, 3), (F', 3).

    For a sequence of poses of one mesh, build a `MeshDecimator` once on the rest pose instead.
    """
    return MeshDecimator(vertices, faces, target_faces)(np.asarray(vertices))
