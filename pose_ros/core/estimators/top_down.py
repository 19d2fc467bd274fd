"""Top-down multi-person pose: person detector -> one crop per box -> single-person keypoints, batched.

Walk of one frame: `CenterNetDetector` finds person boxes (score threshold, NMS, at most `max_people`);
`boxes_to_crop_transforms` turns each box into an axis-aligned affine crop with the keypoint model's aspect
ratio and `padding`; `sample_crops` samples all crops in one `grid_sample` call; `MoveNetSinglePose` runs one
forward pass on the whole batch; keypoints go back to the image through the same affine matrices, exactly.

Boxes may also come from outside (e.g. another detector on a ROS topic): `estimate(image, boxes_xyxy, scores)`
skips the detector. Cost grows with the number of people (one crop each), unlike the bottom-up pipeline,
and anybody the detector misses is missed (see docs/top_down.md for measurements).

Person score = sqrt(detector score × mean keypoint confidence), the geometric mean of two numbers in [0, 1]:
a confident box around something that does not look like a body (a false detection) scores low, and so does
a body the detector barely saw. The square root keeps the score on the scale of its two factors (and of the
bottom-up scores), so one `score_threshold` serves both modes: the plain product would drop a half-visible
player at 0.45 × 0.40 = 0.18 below the default threshold 0.2 (geometric mean: 0.42). Ranking is the same.
The published box is the detector's box (clipped to the image).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pose_ros.core.device import resolve_device
from pose_ros.core.estimators.centernet import CenterNetDetector, CenterNetSettings
from pose_ros.core.estimators.crops import boxes_to_crop_transforms, crop_to_image, sample_crops
from pose_ros.core.estimators.movenet_single import MoveNetSinglePose, MoveNetSingleSettings
from pose_ros.core.person import Person
from pose_ros.core.skeletons import COCO17


@dataclass
class TopDownSettings:
    """Settings of `TopDownEstimator`.

    Attributes:
        model: single-person keypoint model: "movenet_thunder" or "movenet_lightning".
        decoder: "regression" (MoveNet's own decoding) or "heatmap" (argmax + parabola on its heatmaps).
        detector_threshold: minimum detector person score in [0, 1].
        nms_iou: IoU above which overlapping detections are suppressed.
        max_people: at most this many boxes are cropped (best detector scores first).
        padding: crop size / aspect-corrected box size (>= 1).
        device: "auto" | "cpu" | "cuda" | "cuda:N" (both networks run there).
        backend: runtime of both networks: "auto" (onnxruntime on the CPU, torch on CUDA) | "torch" |
            "onnxruntime" (ONNX exports cached; torch fallback with a warning if an export fails).
        model_dir: directory of the TF.js models (default: the set-up's human-models cache).
    """

    model: str = "movenet_thunder"
    decoder: str = "regression"
    detector_threshold: float = 0.3
    nms_iou: float = 0.5
    max_people: int = 20
    padding: float = 1.25
    device: str = "auto"
    backend: str = "auto"
    model_dir: str | None = None

    def detector_settings(self) -> CenterNetSettings:
        return CenterNetSettings(
            score_threshold=self.detector_threshold,
            nms_iou=self.nms_iou,
            max_detections=self.max_people,
            device=self.device,
            backend=self.backend,
            model_dir=self.model_dir,
        )

    def keypoint_settings(self) -> MoveNetSingleSettings:
        return MoveNetSingleSettings(
            model=self.model, decoder=self.decoder, device=self.device, backend=self.backend, model_dir=self.model_dir
        )

    def validate(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        self.detector_settings().validate()
        self.keypoint_settings().validate()
        if self.padding < 1.0:
            raise ValueError(f"padding must be >= 1, got {self.padding}")


class TopDownEstimator:
    """image (H, W, 3) uint8 RGB -> list[Person] (layout "coco17"), best score first, ids 0..N-1."""

    def __init__(self, settings: TopDownSettings | None = None) -> None:
        self.settings = settings or TopDownSettings()
        self.settings.validate()
        self.device = resolve_device(self.settings.device)
        self.detector = CenterNetDetector(self.settings.detector_settings())
        self.keypoints = MoveNetSinglePose(self.settings.keypoint_settings())

    def __call__(
        self, image_rgb: np.ndarray, detector_threshold: float | None = None, max_people: int | None = None
    ) -> list[Person]:
        """People in the image; `detector_threshold` and `max_people` override the settings for this call."""
        detections = self.detector(image_rgb, detector_threshold, max_people)
        return self.estimate(image_rgb, detections.boxes_xyxy, detections.scores)

    def estimate(self, image_rgb: np.ndarray, boxes_xyxy: np.ndarray, box_scores: np.ndarray) -> list[Person]:
        """People for given boxes (N, 4) image pixels x1 y1 x2 y2 with scores (N,) in [0, 1]."""
        boxes = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return []
        transforms = boxes_to_crop_transforms(boxes, self.keypoints.input_size, self.settings.padding)
        image = torch.from_numpy(np.ascontiguousarray(image_rgb)).to(self.device)
        crops = sample_crops(image, transforms, self.keypoints.input_size)
        crop_xy, confidences = self.keypoints(crops)
        image_xy = crop_to_image(crop_xy, transforms)
        people = [
            _person(image_xy[i], confidences[i], float(box_scores[i]), boxes[i], image_rgb.shape[:2])
            for i in range(len(boxes))
        ]
        people.sort(key=lambda p: p.score, reverse=True)
        for index, person in enumerate(people):
            person.id = index
        return people


def _person(xy: np.ndarray, confidences: np.ndarray, box_score: float, box: np.ndarray, image_hw) -> Person:
    height, width = image_hw
    low = np.maximum(box[:2], -0.5)
    high = np.minimum(box[2:], np.array([width - 0.5, height - 0.5], np.float32))
    return Person(
        keypoints_xy=xy.astype(np.float32),
        confidences=confidences.astype(np.float32),
        score=float(np.sqrt(box_score * float(confidences.mean()))),
        bbox_xywh=np.array([low[0], low[1], high[0] - low[0], high[1] - low[1]], np.float32),
        layout=COCO17.name,
    )
