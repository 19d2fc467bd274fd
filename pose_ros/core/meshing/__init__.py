"""Body meshes per person: the one home of the mesh stages and of the worker that runs them beside the 2D path.

  stages    MeshConfig (what to run), create_mesh_stage, the Anny and SMPL+HMR stages (return values, never
            modify the people they are given), MeshFit
  smpl_hmr  SmplHmrMeshStage: crops → HMR → SMPL, one batched forward per frame
  worker    MeshWorker: its own thread, newest frame wins, results keyed by track id and stamped with their frame
The body models themselves live in pose_ros.core.body (SMPL layer, HMR network, Anny fitter).
"""

from pose_ros.core.meshing.stages import MESH_MODELS, SMPL_SOURCE, MeshConfig, MeshFit, MeshStage, create_mesh_stage
from pose_ros.core.meshing.worker import FittedMesh, MeshJob, MeshWorker

__all__ = [
    "MESH_MODELS",
    "SMPL_SOURCE",
    "FittedMesh",
    "MeshConfig",
    "MeshFit",
    "MeshJob",
    "MeshStage",
    "MeshWorker",
    "create_mesh_stage",
]
