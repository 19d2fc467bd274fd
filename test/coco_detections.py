"""Detections for evaluation tests: the labelled people of a COCO-17 ground-truth file, keypoints moved by noise."""

from __future__ import annotations

from typing import Any

import numpy as np


def jittered_coco_detections(
    gt: dict[str, Any], noise_px: float, seed: int, rounded: bool = False
) -> list[dict[str, Any]]:
    """One detection per labelled person (visibility 0.9, a random score in [0.2, 1)), keypoints moved by seeded
    Gaussian noise of `noise_px`; `rounded`: keypoints to 3 and scores to 5 decimals, as results files are."""
    rng = np.random.default_rng(seed)
    dets = []
    for ann in gt["annotations"]:
        if ann["num_keypoints"] == 0:
            continue
        kp = np.asarray(ann["keypoints"], float).reshape(17, 3)
        kp[:, :2] += rng.normal(0, noise_px, (17, 2))
        score = float(rng.uniform(0.2, 1.0))
        if rounded:
            kp[:, :2], score = kp[:, :2].round(3), round(score, 5)
        kp[:, 2] = 0.9
        dets.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(), "score": score})
    return dets
