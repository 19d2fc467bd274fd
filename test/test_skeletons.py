"""Keypoint layouts and the conversions between them (pose_ros.core.skeletons)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pose_ros.core import skeletons as sk


@pytest.mark.parametrize("layout", list(sk.LAYOUTS.values()), ids=list(sk.LAYOUTS))
def test_layout_is_consistent(layout: sk.Layout) -> None:
    assert len(set(layout.keypoints)) == layout.num_keypoints
    for a, b in layout.limbs:
        assert 0 <= a < layout.num_keypoints and 0 <= b < layout.num_keypoints and a != b
    assert len(set(map(frozenset, layout.limbs))) == len(layout.limbs)
    assert sk.get_layout(layout.name) is layout


def test_layout_sizes_and_known_orders() -> None:
    assert (sk.MPII16.num_keypoints, sk.BLAZEPOSE33.num_keypoints, sk.SMPL24.num_keypoints) == (16, 33, 24)
    assert sk.MPII16.keypoints[:3] == ("right_ankle", "right_knee", "right_hip")
    assert sk.MPII16.index("head_top") == 9 and sk.MPII16.index("left_wrist") == 15
    assert sk.BLAZEPOSE33.index("left_shoulder") == 11 and sk.BLAZEPOSE33.index("right_foot_index") == 32
    assert sk.SMPL24.index("head") == 15 and len(sk.SMPL24.limbs) == 23
    with pytest.raises(KeyError, match="known"):
        sk.get_layout("coco19")


def _random_pose(k: int, batch: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(k)
    return rng.uniform(0, 500, (*batch, k, 2)).astype(np.float32), rng.uniform(0.1, 1, (*batch, k)).astype(np.float32)


def test_coco17_coco18_round_trip_and_neck() -> None:
    xy, conf = _random_pose(17, (3,))
    xy18, conf18 = sk.coco17_to_coco18(xy, conf)
    neck = sk.COCO18_OPENPOSE.index("neck")
    ls, rs = sk.COCO17.index("left_shoulder"), sk.COCO17.index("right_shoulder")
    np.testing.assert_allclose(xy18[:, neck], 0.5 * (xy[:, ls] + xy[:, rs]), rtol=1e-6)
    np.testing.assert_array_equal(conf18[:, neck], np.minimum(conf[:, ls], conf[:, rs]))
    back_xy, back_conf = sk.coco18_to_coco17(xy18, conf18)
    np.testing.assert_array_equal(back_xy, xy)
    np.testing.assert_array_equal(back_conf, conf)
    assert np.array_equal(sk.convert_keypoints(xy18, conf18, "coco18_openpose", "coco17")[0], xy)


def test_blazepose33_to_coco17_picks_by_name() -> None:
    xy, conf = _random_pose(33)
    out_xy, out_conf = sk.blazepose33_to_coco17(xy, conf)
    assert out_xy.shape == (17, 2) and out_conf.shape == (17,)
    for i, name in enumerate(sk.COCO17.keypoints):
        j = sk.BLAZEPOSE33.index(name)
        np.testing.assert_array_equal(out_xy[i], xy[j])
        assert out_conf[i] == conf[j]
    # BlazePose's left eye is the eye centre (index 2), not the inner or outer corner.
    np.testing.assert_array_equal(out_xy[sk.COCO17.index("left_eye")], xy[2])


def test_coco17_to_mpii16_on_a_real_coco_person(shared_data) -> None:
    ann = json.loads((shared_data / "coco-sample" / "test_coco.json").read_text())["annotations"][0]
    kp = np.asarray(ann["keypoints"], np.float32).reshape(17, 3)
    xy, conf = kp[:, :2], (kp[:, 2] > 0).astype(np.float32)
    mpii_xy, mpii_conf = sk.coco17_to_mpii16(xy, conf)
    for name in ("right_ankle", "left_knee", "right_hip", "left_wrist", "right_elbow", "left_shoulder"):
        np.testing.assert_array_equal(mpii_xy[sk.MPII16.index(name)], xy[sk.COCO17.index(name)])
    hips = xy[[sk.COCO17.index("left_hip"), sk.COCO17.index("right_hip")]]
    np.testing.assert_allclose(mpii_xy[sk.MPII16.index("pelvis")], hips.mean(axis=0), rtol=1e-6)
    for name in sk.MPII16_UNAVAILABLE_FROM_COCO17:
        assert np.isnan(mpii_xy[sk.MPII16.index(name)]).all() and mpii_conf[sk.MPII16.index(name)] == 0
    # The person's legs are below their shoulders in the image (y grows downwards).
    assert mpii_xy[sk.MPII16.index("right_ankle"), 1] > mpii_xy[sk.MPII16.index("right_shoulder"), 1]


def test_convert_keypoints_chains_through_coco17_and_rejects_unknown_paths() -> None:
    xy, conf = _random_pose(33, (2,))
    direct = sk.coco17_to_mpii16(*sk.blazepose33_to_coco17(xy, conf))
    chained = sk.convert_keypoints(xy, conf, "blazepose33", "mpii16")
    np.testing.assert_array_equal(chained[0], direct[0])
    np.testing.assert_array_equal(chained[1], direct[1])
    with pytest.raises(KeyError, match="no keypoint conversion"):
        sk.convert_keypoints(xy, conf, "mpii16", "smpl24")
