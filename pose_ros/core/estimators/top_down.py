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

Overlapping people: box NMS only drops boxes overlapping a better one by IoU > 0.7 (two people side by side
or one behind the other overlap more than 0.5), and the duplicates of one person this lets through are
removed after the keypoints by their skeletons (`movenet.drop_duplicates`, OKS > 0.7 with a better person).
CenterNet itself gives two people one box (its centre map has one peak) when their boxes overlap with IoU
>= ~0.5. The single-person network's centre heatmap often still shows the second person inside that crop:
`second_person_threshold` (on by default) looks for a second centre peak there, regresses that person's
keypoints from it and crops them again (one more crop in the same kind of batch, only when such a person is
not already somebody's skeleton). `bottom_up_proposals` adds the boxes of MoveNet MultiPose's people.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pose_ros.core.device import resolve_device
from pose_ros.core.estimators.centernet import (
    NUM_CANDIDATES,
    CenterNetDetector,
    CenterNetSettings,
    non_maximum_suppression,
)
from pose_ros.core.estimators.crops import boxes_to_crop_transforms, crop_to_image, sample_crops
from pose_ros.core.estimators.movenet import MoveNetMultiPose, MoveNetMultiPoseSettings, drop_duplicates
from pose_ros.core.estimators.movenet_single import STRIDE, MoveNetSinglePose, MoveNetSingleSettings
from pose_ros.core.metrics import oks
from pose_ros.core.person import Person
from pose_ros.core.skeletons import COCO17

SECOND_PERSON_MAX_OKS = 0.5  # a second centre whose skeleton matches a found person this well is that person
SECOND_PERSON_MARGIN = 0.1  # keypoint box -> person box: grown by this fraction of its larger side per side


@dataclass
class TopDownSettings:
    """Settings of `TopDownEstimator`.

    Attributes:
        model: single-person keypoint model: "movenet_thunder" or "movenet_lightning".
        decoder: "regression" (MoveNet's own decoding) or "heatmap" (argmax + parabola on its heatmaps).
        detector_threshold: minimum detector person score in [0, 1].
        nms_iou: box IoU above which a detection overlapping a better one is suppressed. Kept high (0.7)
            so that two overlapping people keep a box each; the duplicate boxes this lets through on one
            person give the same skeleton and are removed by `duplicate_oks`.
        duplicate_oks: a person whose skeleton has OKS above this with a better-scored one (the same test as
            the bottom-up model's, `movenet.drop_duplicates`) is a duplicate and dropped (1: keep all).
        bottom_up_proposals: also crop the boxes of the people MoveNet MultiPose finds (one more network,
            ~50 ms on a CPU): CenterNet gives two people one box when their boxes overlap with IoU >= ~0.5,
            MultiPose's finer centre map separates more of them (docs/top_down.md, overlap table).
        second_person_threshold: second-person search inside each crop: a local maximum of the keypoint
            network's centre heatmap >= this, more than 4 cells (of 64 for Thunder) from the crop's own
            person and not matching any found skeleton (OKS <= 0.5), is cropped again around the keypoints
            regressed from it, and the person whose centre is nearest that peak is taken there, as one more
            person (1: off). Separates people CenterNet boxes together (docs/top_down.md, overlap table).
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
    nms_iou: float = 0.7
    duplicate_oks: float = 0.7
    bottom_up_proposals: bool = False
    second_person_threshold: float = 0.2
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
        if not 0.0 < self.second_person_threshold <= 1.0:
            raise ValueError(f"second_person_threshold must be in (0, 1], got {self.second_person_threshold}")
        if not 0.0 < self.duplicate_oks <= 1.0:
            raise ValueError(f"duplicate_oks must be in (0, 1], got {self.duplicate_oks}")


class TopDownEstimator:
    """image (H, W, 3) uint8 RGB -> list[Person] (layout "coco17"), best score first, ids 0..N-1."""

    def __init__(self, settings: TopDownSettings | None = None) -> None:
        self.settings = settings or TopDownSettings()
        self.settings.validate()
        self.device = resolve_device(self.settings.device)
        self.detector = CenterNetDetector(self.settings.detector_settings())
        self.keypoints = MoveNetSinglePose(self.settings.keypoint_settings())
        self.proposer = None
        if self.settings.bottom_up_proposals:
            self.proposer = MoveNetMultiPose(
                MoveNetMultiPoseSettings(
                    score_threshold=self.settings.detector_threshold, device=self.settings.device,
                    backend=self.settings.backend, model_dir=self.settings.model_dir,
                )
            )  # fmt: skip

    def __call__(
        self,
        image_rgb: np.ndarray,
        detector_threshold: float | None = None,
        max_people: int | None = None,
        second_person_threshold: float | None = None,
    ) -> list[Person]:
        """People in the image; `detector_threshold`, `max_people` and `second_person_threshold` override the
        settings for this call.

        Twice `max_people` boxes are cropped (duplicates of one person may be among them), at most
        `max_people` people are returned."""
        limit = self.settings.max_people if max_people is None else max_people
        detections = self.detector(image_rgb, detector_threshold, min(2 * limit, NUM_CANDIDATES))
        boxes, scores = detections.boxes_xyxy, detections.scores
        if self.proposer is not None:
            boxes, scores = self._with_proposals(image_rgb, boxes, scores, 2 * limit)
        return self.estimate(image_rgb, boxes, scores, second_person_threshold)[:limit]

    def _with_proposals(self, image_rgb: np.ndarray, boxes: np.ndarray, scores: np.ndarray, limit: int):
        """CenterNet's boxes (N, 4) xyxy + scores (N,) and MoveNet MultiPose's people's boxes, after box NMS."""
        found = self.proposer(image_rgb)
        if not found:
            return boxes, scores
        extra = np.array([[x, y, x + w, y + h] for x, y, w, h in (p.bbox_xywh for p in found)], np.float32)
        boxes = np.vstack([boxes.reshape(-1, 4), extra])
        scores = np.concatenate([scores, np.array([p.score for p in found], np.float32)])
        keep = non_maximum_suppression(boxes, scores, self.settings.nms_iou)[:limit]
        return boxes[keep], scores[keep]

    def estimate(
        self,
        image_rgb: np.ndarray,
        boxes_xyxy: np.ndarray,
        box_scores: np.ndarray,
        second_person_threshold: float | None = None,
    ) -> list[Person]:
        """People for given boxes (N, 4) image pixels x1 y1 x2 y2 with scores (N,) in [0, 1] (plus the people
        the second-person search finds in their crops; `second_person_threshold` overrides the setting)."""
        second = self.settings.second_person_threshold if second_person_threshold is None else second_person_threshold
        boxes = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
        box_scores = np.asarray(box_scores, np.float32).reshape(-1)
        if len(boxes) == 0:
            return []
        image = torch.from_numpy(np.ascontiguousarray(image_rgb)).to(self.device)
        people, maps, transforms = self._crop_people(image, boxes, box_scores)
        if second < 1.0:
            extra_boxes, extra_scores, centres_xy = self._second_people(maps, transforms, box_scores, people, second)
            if len(extra_boxes):
                people += self._crop_people(image, extra_boxes, extra_scores, centres_xy)[0]
        people.sort(key=lambda p: p.score, reverse=True)
        people = drop_duplicates(people, self.settings.duplicate_oks)
        for index, person in enumerate(people):
            person.id = index
        return people

    def _crop_people(
        self, image: torch.Tensor, boxes: np.ndarray, box_scores: np.ndarray, centres_xy: np.ndarray | None = None
    ):
        """One person per box: image (H, W, 3) tensor, boxes (N, 4) xyxy, scores (N,) -> (people in box order,
        the network's heads (N, M, M, C), the crop transforms (N, 2, 3)). With `centres_xy` (N, 2) image pixels
        each crop's person is the one whose centre peak is nearest that point (not MoveNet's own choice)."""
        transforms = boxes_to_crop_transforms(boxes, self.keypoints.input_size, self.settings.padding)
        maps = self.keypoints.heads(sample_crops(image, transforms, self.keypoints.input_size))
        centres = None
        if centres_xy is not None:
            crop_xy = np.einsum("nij,nj->ni", np.linalg.inv(transforms[:, :, :2]), centres_xy - transforms[:, :, 2])
            cells = (crop_xy[:, ::-1] + 0.5) / STRIDE  # (N, 2) row, column
            target = torch.as_tensor(cells, dtype=torch.float32, device=maps["center"].device)
            centres = self.keypoints.centre_cells_near(maps, target)
        crop_xy, confidences = self.keypoints.decode(maps, centres)
        image_xy = crop_to_image(crop_xy, transforms)
        image_hw = tuple(image.shape[:2])
        people = [
            _person(image_xy[i], confidences[i], float(box_scores[i]), boxes[i], image_hw) for i in range(len(boxes))
        ]
        return people, maps, transforms

    def _second_people(
        self, maps, transforms, box_scores, people: list[Person], threshold: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """People a crop shows besides its own one (a second centre-heatmap peak >= `threshold`) whom no crop
        has as its person yet (the skeleton regressed from that centre has OKS <= `SECOND_PERSON_MAX_OKS` with
        every skeleton found, and with each other) -> boxes (P, 4) xyxy: the regressed keypoints' box grown by
        `SECOND_PERSON_MARGIN` of its size per side; scores (P,) = min(crop's box score, centre value);
        centres (P, 2) image pixels, the peaks' positions."""
        found = self.keypoints.second_centres(maps, threshold)
        if not found:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 2))
        items = torch.tensor([f[0] for f in found], device=maps["center"].device)
        centres = tuple(torch.tensor([f[i] for f in found], device=items.device) for i in (1, 2))
        subset = {name: value[items] for name, value in maps.items()}
        crop_xy, _ = self.keypoints.to_crop_pixels(self.keypoints.regressed_keypoints(subset, centres))
        picked = transforms[items.cpu().numpy()]
        image_xy = crop_to_image(crop_xy, picked)  # (P, 17, 2)
        cell_xy = np.array([[f[2], f[1]] for f in found], np.float64) * STRIDE - 0.5  # crop pixels, as the keypoints
        centre_xy = crop_to_image(cell_xy[:, None], picked)[:, 0]  # (P, 2)
        known = [p.keypoints_xy for p in people]
        known_area = [max(float(p.bbox_xywh[2] * p.bbox_xywh[3]), 1.0) for p in people]
        boxes, scores, centres_xy = [], [], []
        for (item, _, _, value), xy, centre in zip(found, image_xy, centre_xy, strict=True):
            if known and oks(xy[None], np.stack(known), np.ones((len(known), len(xy)), bool),
                             np.array(known_area)).max() > SECOND_PERSON_MAX_OKS:  # fmt: skip
                continue
            low, high = xy.min(axis=0), xy.max(axis=0)
            margin = SECOND_PERSON_MARGIN * (high - low).max()
            boxes.append(np.concatenate([low - margin, high + margin]))
            scores.append(min(float(box_scores[item]), value))
            centres_xy.append(centre)
            known.append(xy)
            known_area.append(max(float(np.prod(high - low + 2 * margin)), 1.0))
        return (np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                np.array(centres_xy, np.float64).reshape(-1, 2))  # fmt: skip


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
