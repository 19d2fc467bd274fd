"""OpenPose COCO-18 output channels: which heatmap is which keypoint, which PAF pair is which limb.

Checked against the published CMU COCO body model (`body_pose_model.pth`, Caffe `pose_deploy_linevec`):
its reference decoder pairs limb `limbSeq[k]` with PAF channels `mapIdx[k] - 19`; sorted by channel, that is
exactly the limb order of `COCO18_OPENPOSE.limbs`, so limb i ↔ PAF channels (2i, 2i+1) = (x, y) components of
the unit vector pointing from the limb's first keypoint to its second. Lightweight OpenPose
(`checkpoint_iter_370000.pth`) uses the same channel layout. Heatmap channel k is keypoint k of
`COCO18_OPENPOSE`; channel 18 is the background map.
"""

from __future__ import annotations

import numpy as np

from pose_ros.core.skeletons import COCO18_OPENPOSE

LAYOUT = COCO18_OPENPOSE
NUM_KEYPOINTS = LAYOUT.num_keypoints  # 18
LIMBS = np.array(LAYOUT.limbs, dtype=np.int64)  # (19, 2) keypoint indices (from, to)
NUM_LIMBS = len(LIMBS)  # 19
PAF_CHANNELS = np.stack([2 * np.arange(NUM_LIMBS), 2 * np.arange(NUM_LIMBS) + 1], axis=1)  # (19, 2): x, y channel
NUM_PAF_CHANNELS = 2 * NUM_LIMBS  # 38
NUM_HEATMAP_CHANNELS = NUM_KEYPOINTS + 1  # 19: keypoints + background
BACKGROUND_CHANNEL = NUM_KEYPOINTS
NUM_OUTPUT_CHANNELS = NUM_KEYPOINTS + NUM_PAF_CHANNELS + 1  # K + 2L = 56, plus the background = 57

# The shoulder→ear limbs close cycles (the ears are already reached through nose→eye→ear): OpenPose uses
# them only to attach an ear to an existing person, never to start one.
REDUNDANT_LIMBS = tuple(
    i
    for i, (a, b) in enumerate(LAYOUT.limbs)
    if (LAYOUT.keypoints[a], LAYOUT.keypoints[b]) in {("right_shoulder", "right_ear"), ("left_shoulder", "left_ear")}
)
TREE_LIMBS = tuple(i for i in range(NUM_LIMBS) if i not in REDUNDANT_LIMBS)
