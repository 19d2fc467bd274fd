"""Train an OpenPose-style network (heatmaps + PAFs, loss at every stage) on COCO-format keypoint data.

Examples:
    # a compact network from scratch (CPU-friendly)
    python -m pose_ros.tools.train_openpose --annotations person_keypoints.json --images images/ \\
        --output compact.pth --architecture compact --input-size 256 --iterations 2000
    # fine-tune CMU's COCO body model (user-supplied body_pose_model.pth) at its published layout
    python -m pose_ros.tools.train_openpose --annotations a.json --images img/ --output tuned.pth \\
        --architecture cmu --init body_pose_model.pth --device cuda

The output loads with `pose_ros.core.models.openpose.load_model` and runs in `OpenPoseEstimator`
(`openpose_weights` of pose_node). A JSON file next to it (`<output>.log.json`) holds the loss of every iteration.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

from pose_ros.core.device import resolve_device
from pose_ros.core.models.openpose import (
    CompactOpenPose,
    LightweightOpenPose,
    OpenPoseCMU,
    load_model,
    save_compact,
)
from pose_ros.core.training.openpose import TargetSettings, TrainSettings, load_coco_samples, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotations", required=True, help="COCO keypoint annotation JSON")
    parser.add_argument("--images", required=True, help="directory of the images named in the annotations")
    parser.add_argument("--output", required=True, help="checkpoint to write (.pth)")
    parser.add_argument("--architecture", choices=("compact", "cmu", "lightweight"), default="compact")
    parser.add_argument("--init", default="", help="checkpoint to start from (any layout load_model reads)")
    parser.add_argument("--input-size", type=int, nargs="+", default=[368], help="input height [width], px")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--sigma", type=float, default=1.0, help="heatmap sigma, output-map pixels")
    parser.add_argument("--limb-width", type=float, default=1.0, help="PAF half-width, output-map pixels")
    parser.add_argument("--width", type=int, default=32, help="compact: front width")
    parser.add_argument("--stage-width", type=int, default=64, help="compact: stage width")
    parser.add_argument("--stages", type=int, default=3, help="compact: number of stages")
    parser.add_argument("--kernel", type=int, default=5, help="compact: kernel of stages 2+")
    parser.add_argument("--pools", type=int, default=3, help="compact: max-pools (stride 2**pools)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def make_model(args: argparse.Namespace) -> nn.Module:
    """The network to train: loaded from --init, else freshly initialised for --architecture."""
    if args.init:
        return load_model(args.init)
    torch.manual_seed(args.seed)
    if args.architecture == "cmu":
        return OpenPoseCMU()
    if args.architecture == "lightweight":
        return LightweightOpenPose()
    return CompactOpenPose(width=args.width, stage_width=args.stage_width, num_stages=args.stages,
                           kernel=args.kernel, num_pools=args.pools)


def save(model: nn.Module, path: Path) -> None:
    """Write the trained weights in the layout `load_model` reads back."""
    if isinstance(model, CompactOpenPose):
        save_compact(model, path)
    elif isinstance(model, LightweightOpenPose):
        torch.save({"state_dict": model.state_dict()}, path)
    else:
        torch.save(model.state_dict(), path)


def main(argv: list[str] | None = None) -> list[float]:
    """Run the training; returns the loss of every iteration."""
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    model = make_model(args)
    height, width = (args.input_size * 2)[:2]
    targets = TargetSettings(input_size=(height, width), sigma=args.sigma, limb_width=args.limb_width,
                             stride=int(model.stride), map_offset=float(model.map_offset))
    samples = load_coco_samples(args.annotations, args.images, targets)
    settings = TrainSettings(iterations=args.iterations, batch_size=args.batch_size, learning_rate=args.lr,
                             seed=args.seed)

    def log(iteration: int, loss: float) -> None:
        if iteration % max(1, args.iterations // 20) == 0 or iteration == args.iterations - 1:
            print(f"iteration {iteration:6d}  loss {loss:.6f}", flush=True)

    losses = train(model, samples, settings, device, log)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    save(model.cpu(), output)
    output.with_suffix(".log.json").write_text(json.dumps({"losses": losses, "args": vars(args)}))
    print(f"wrote {output} ({len(samples)} images, loss {losses[0]:.5f} -> {losses[-1]:.5f})")
    return losses


if __name__ == "__main__":
    main()
