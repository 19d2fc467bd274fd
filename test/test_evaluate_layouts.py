"""The evaluation command on COCO-style files in other joint layouts, written by the tests from the shared samples.

CrowdPose-14 (head/neck, no `area`), PoseTrack-17 (head_bottom/head_top in the eye slots, ignore regions),
MPII-16 written as a COCO file; each is scored on the joints the predictions share with it by name, and the
AP equals pycocotools COCOeval run on those joints alone with the stated OKS constants and area rule.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from coco_detections import jittered_coco_detections
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pose_ros.core.annotations import AREA_FROM_BOX
from pose_ros.core.metrics import COCO_KEYPOINT_SIGMAS, COCO_KEYPOINT_STATS
from pose_ros.core.skeletons import COCO17, MPII16
from pose_ros.tools import evaluate

LIMBS = COCO17.keypoints[5:]  # shoulders to ankles, COCO order
CROWDPOSE14 = [*LIMBS, "head", "neck"]
POSETRACK17 = ["nose", "head_bottom", "head_top", "left_ear", "right_ear", *LIMBS]
MPII16_SHORT = ["r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax", "upper_neck",
                "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist"]  # fmt: skip
SIGMA = dict(zip(COCO17.keypoints, COCO_KEYPOINT_SIGMAS, strict=True)) | {"neck": 0.079}

Point = Callable[[np.ndarray], np.ndarray]


def _midpoint(a: str, b: str) -> Point:
    i, j = COCO17.index(a), COCO17.index(b)
    return lambda kp: np.array([*(kp[i, :2] + kp[j, :2]) / 2, 2.0 * (kp[i, 2] > 0 and kp[j, 2] > 0)])


def _above_nose(pixels: float) -> Point:
    nose = COCO17.index("nose")
    return lambda kp: np.array([kp[nose, 0], kp[nose, 1] - pixels, kp[nose, 2]])


EXTRA: dict[str, Point] = {
    "head": _above_nose(15.0),
    "head_top": _above_nose(15.0),
    "neck": _midpoint("left_shoulder", "right_shoulder"),
    "head_bottom": _midpoint("left_shoulder", "right_shoulder"),
}


def relayout(gt: dict[str, Any], names: list[str], keep_area: bool = True) -> dict[str, Any]:
    """The COCO-17 file with its people in the layout `names` (extra points made from COCO ones)."""
    out = copy.deepcopy(gt)
    out["categories"] = [{"id": 1, "name": "person", "keypoints": names}]
    for ann in out["annotations"]:
        kp = np.asarray(ann["keypoints"], float).reshape(17, 3)
        rows = [kp[COCO17.index(n)] if n in COCO17.keypoints else EXTRA[n](kp) for n in names]
        ann["keypoints"] = np.array(rows).ravel().tolist()
        ann["num_keypoints"] = int(sum(r[2] > 0 for r in rows))
        ann.pop("segmentation", None)
        if not keep_area:
            del ann["area"]
    return out


def pycocotools_on(gt: dict[str, Any], dets: list[dict[str, Any]], src: list[str], names: list[str]) -> np.ndarray:
    """COCOeval on the joints of `names` that `src` has: both sides cut to them, σ per joint by name.

    Ground-truth areas missing from `gt` are AREA_FROM_BOX · box area (the documented rule).
    """
    keep = [n for n in names if n in src]
    file_idx = [names.index(n) for n in keep]
    src_idx = [src.index(n) for n in keep]
    gt = copy.deepcopy(gt)
    for ann in gt["annotations"]:
        kp = np.asarray(ann["keypoints"], float).reshape(-1, 3)[file_idx]
        ann["keypoints"] = kp.ravel().tolist()
        ann["num_keypoints"] = int((kp[:, 2] > 0).sum())
        ann.setdefault("area", AREA_FROM_BOX * ann["bbox"][2] * ann["bbox"][3])
        ann.setdefault("iscrowd", 0)
    gt["categories"] = [dict(gt["categories"][0], keypoints=keep)]
    cut = [dict(d, keypoints=np.asarray(d["keypoints"], float).reshape(-1, 3)[src_idx].ravel().tolist()) for d in dets]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(cut), "keypoints")
        evaluator.params.kpt_oks_sigmas = np.array([SIGMA[n] for n in keep])
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = evaluate.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def coco_gt(shared_data: Path) -> dict[str, Any]:
    return json.loads((shared_data / "coco-sample" / "test_coco.json").read_text())


def evaluate_detections(tmp_path: Path, gt: dict[str, Any], dets: list, capsys, *extra: str) -> tuple[dict, str]:
    """Run the command on `gt` and `dets` (written to tmp_path); the summary and stderr."""
    summary = tmp_path / "summary.json"
    args = ["--annotations", write(tmp_path / "gt.json", gt), "--detections", write(tmp_path / "dets.json", dets),
            "--summary", summary, *extra]  # fmt: skip
    code, _, err = run(args, capsys)
    assert code == 0, err
    return json.loads(summary.read_text()), err


def test_crowdpose_without_area_scores_the_shared_joints(coco_gt, tmp_path: Path, capsys) -> None:
    gt = relayout(coco_gt, CROWDPOSE14, keep_area=False)
    dets = jittered_coco_detections(coco_gt, noise_px=4.0, seed=0, rounded=True)
    summary, err = evaluate_detections(tmp_path, gt, dets, capsys)
    values = summary["metrics"]
    expected = pycocotools_on(gt, dets, list(COCO17.keypoints), CROWDPOSE14)
    np.testing.assert_allclose([values[k] for k in COCO_KEYPOINT_STATS], expected, atol=1e-6)
    assert 0.3 < values["AP"] < 1.0 and values["PCK@0.2"] > 0.8
    # One warning per gap: the derived area and the joints a COCO-17 prediction lacks (CrowdPose's head = head_top).
    assert err.count("warning") == 2
    assert "no 'area'" in err and f"{AREA_FROM_BOX} × box width × height" in err
    assert "not scored: head_top, neck" in err
    assert summary["warnings"] == [line.removeprefix("evaluate: warning: ") for line in err.strip().splitlines()]


def test_openpose_neck_is_scored_with_crowdpose_sigma(coco_gt, tmp_path: Path, capsys) -> None:
    gt = relayout(coco_gt, CROWDPOSE14)
    coco18 = ["nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
              "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
              "right_eye", "left_eye", "right_ear", "left_ear"]  # fmt: skip
    dets = []
    for det in jittered_coco_detections(coco_gt, noise_px=3.0, seed=1, rounded=True):
        kp = np.asarray(det["keypoints"]).reshape(17, 3)
        neck = (kp[COCO17.index("left_shoulder")] + kp[COCO17.index("right_shoulder")]) / 2 + [2.0, 1.0, 0.0]
        rows = [neck if n == "neck" else kp[COCO17.index(n)] for n in coco18]
        dets.append(dict(det, keypoints=np.array(rows).round(3).ravel().tolist()))
    summary, err = evaluate_detections(tmp_path, gt, dets, capsys)
    np.testing.assert_allclose([summary["metrics"][k] for k in COCO_KEYPOINT_STATS],
                               pycocotools_on(gt, dets, coco18, CROWDPOSE14), atol=1e-6)  # fmt: skip
    assert "not scored: head_top\n" in err and "coco18_openpose" in err


def posetrack(coco_gt: dict[str, Any]) -> dict[str, Any]:
    return relayout(coco_gt, POSETRACK17, keep_area=False)


def test_posetrack_head_points_are_not_scored_as_eyes(coco_gt, tmp_path: Path, capsys) -> None:
    gt = posetrack(coco_gt)
    dets = jittered_coco_detections(coco_gt, noise_px=3.0, seed=2, rounded=True)
    far_eyes = copy.deepcopy(dets)
    for det in far_eyes:  # eyes thrown far away: a file without eyes must not notice
        for name in ("left_eye", "right_eye"):
            det["keypoints"][3 * COCO17.index(name) : 3 * COCO17.index(name) + 2] = [5000.0, 5000.0]
    runs = []
    for i, candidate in enumerate((dets, far_eyes)):
        (tmp_path / str(i)).mkdir()
        runs.append(evaluate_detections(tmp_path / str(i), gt, candidate, capsys, "--detections-layout", "coco17"))
    (summary, err), (summary_far, _) = runs
    assert summary["metrics"] == summary_far["metrics"]
    expected = pycocotools_on(gt, dets, list(COCO17.keypoints), POSETRACK17)
    np.testing.assert_allclose([summary["metrics"][k] for k in COCO_KEYPOINT_STATS], expected, atol=1e-6)
    assert "not scored: head_bottom, head_top" in err
    # Read as the file's own joint order (the default for 17 values), the same detections put eyes where the
    # head points are: a different, lower score, which is why --detections-layout exists.
    (tmp_path / "own").mkdir()
    own, _ = evaluate_detections(tmp_path / "own", gt, dets, capsys)
    assert own["metrics"]["AP"] < summary["metrics"]["AP"]


def test_ignore_regions_make_predictions_neither_true_nor_false(coco_gt, tmp_path: Path, capsys) -> None:
    gt = posetrack(coco_gt)
    dets = jittered_coco_detections(coco_gt, noise_px=3.0, seed=3, rounded=True)
    image = gt["images"][0]
    # Spectators in the top-left corner that the annotators marked as an ignore region (a triangle).
    image["ignore_regions_x"], image["ignore_regions_y"] = [[0, 200, 0]], [[0, 0, 150]]
    spectators = []
    for k, (x, y) in enumerate([(30.0, 30.0), (60.0, 40.0), (40.0, 60.0)]):
        kp = np.zeros((17, 3))
        kp[:, 0] = x + np.linspace(-10, 10, 17)
        kp[:, 1] = y + np.linspace(-20, 20, 17)
        kp[:, 2] = 0.8
        spectators.append({"image_id": image["id"], "category_id": 1, "keypoints": kp.ravel().tolist(),
                           "score": 0.95 - 0.01 * k})  # fmt: skip
    outside = dict(spectators[0], keypoints=(np.asarray(spectators[0]["keypoints"]) + [300, 200, 0] * 17).tolist())
    layout = ("--detections-layout", "coco17")
    results = {}
    for name, (truth, candidate) in {
        "regions": (gt, dets + spectators + [outside]),
        "reference": (gt, [*dets, outside]),
    }.items():
        (tmp_path / name).mkdir()
        results[name] = evaluate_detections(tmp_path / name, truth, candidate, capsys, *layout)
    (with_regions, err), (reference, _) = results["regions"], results["reference"]
    assert with_regions["metrics"] == reference["metrics"]
    assert "1 ignore regions on 1 images" in err
    # Without the region the same spectators are false positives with high scores.
    no_regions = copy.deepcopy(gt)
    del no_regions["images"][0]["ignore_regions_x"], no_regions["images"][0]["ignore_regions_y"]
    (tmp_path / "none").mkdir()
    plain, _ = evaluate_detections(tmp_path / "none", no_regions, dets + spectators + [outside], capsys, *layout)
    assert plain["metrics"]["AP"] < with_regions["metrics"]["AP"]


def test_unlabelled_frames_and_box_only_crowds(coco_gt, tmp_path: Path, capsys) -> None:
    """PoseTrack frames with is_labeled false are not evaluated; a crowd given as a box alone is read."""
    gt = posetrack(coco_gt)
    dets = jittered_coco_detections(coco_gt, noise_px=3.0, seed=5, rounded=True)
    (tmp_path / "plain").mkdir()
    plain, _ = evaluate_detections(tmp_path / "plain", gt, dets, capsys, "--detections-layout", "coco17")
    frame = dict(gt["images"][0], id=1, is_labeled=False)
    crowd = {"id": 1, "image_id": gt["images"][1]["id"], "category_id": 1, "iscrowd": 1, "bbox": [0, 0, 5, 5]}
    gt["images"].append(frame)
    gt["annotations"].append(crowd)
    spurious = [dict(d, image_id=1) for d in dets[:3]]  # on the unlabelled frame: would be false positives
    summary, err = evaluate_detections(tmp_path, gt, dets + spurious, capsys, "--detections-layout", "coco17")
    assert summary["metrics"] == plain["metrics"]
    assert "1 images are marked is_labeled: false" in err
    assert "4 images" in summary["info"]["annotations"]


def test_mpii_names_in_a_coco_file(shared_data: Path, tmp_path: Path, capsys) -> None:
    entries = json.loads((shared_data / "mpii-sample" / "test_mpii.json").read_text())
    images, annotations, dets = [], [], []
    for i, entry in enumerate(entries):
        joints, vis = np.asarray(entry["joints"], float), np.asarray(entry["joints_vis"], float)
        images.append({"id": i + 1, "file_name": entry["image"]})
        kp = np.concatenate([joints, 2 * vis[:, None]], axis=1)
        annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "keypoints": kp.ravel().tolist(),
                            "iscrowd": 0})  # no bbox, no area, no num_keypoints  # fmt: skip
        coco = np.zeros((17, 3))
        coco[:, :2] = joints[MPII16.index("head_top")]
        for j, name in enumerate(COCO17.keypoints):
            if name in MPII16.keypoints:
                coco[j, :2] = joints[MPII16.index(name)]
        coco[:, 2] = 1.0
        dets.append({"image_id": i + 1, "category_id": 1, "keypoints": coco.ravel().tolist(), "score": 1.0})
    gt = {"images": images, "annotations": annotations,
          "categories": [{"id": 1, "name": "person", "keypoints": MPII16_SHORT}]}  # fmt: skip
    summary, err = evaluate_detections(tmp_path, gt, dets, capsys, "--images", shared_data / "mpii-sample")
    assert summary["metrics"]["AP"] == pytest.approx(1.0) and summary["metrics"]["PCK@0.2"] == 1.0
    assert "not scored: pelvis, thorax, upper_neck, head_top" in err
    assert "no 'bbox'" in err and "no 'num_keypoints'" in err


def test_renders_keep_the_relative_path(coco_gt, shared_data: Path, tmp_path: Path, capsys) -> None:
    images = tmp_path / "images"
    gt = copy.deepcopy(coco_gt)
    gt["images"] = gt["images"][:2]
    for folder, img in zip(("a", "b"), gt["images"], strict=True):
        (images / folder).mkdir(parents=True)
        shutil.copy(shared_data / "coco-sample" / img["file_name"], images / folder / "000000.jpg")
        img["file_name"] = f"{folder}/000000.jpg"
    ids = {img["id"] for img in gt["images"]}
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in ids]
    dets = jittered_coco_detections(gt, noise_px=2.0, seed=4, rounded=True)
    evaluate_detections(tmp_path, gt, dets, capsys, "--images", images, "--render", tmp_path / "render")
    for img in gt["images"]:
        render = cv2.imread(str(tmp_path / "render" / Path(img["file_name"]).with_suffix(".png")))
        assert render is not None and render.shape[1] == 2 * img["width"]
    assert sorted(p.relative_to(tmp_path / "render").as_posix() for p in (tmp_path / "render").rglob("*.png")) == [
        "a/000000.png", "b/000000.png"]  # fmt: skip


def test_model_on_a_posetrack_file(coco_gt, shared_data: Path, human_models: Path, tmp_path: Path, capsys) -> None:
    """MoveNet on PoseTrack-named people: runs, scores 15 joints, warns once about the head points."""
    gt_path = write(tmp_path / "posetrack.json", posetrack(coco_gt))
    summary = tmp_path / "summary.json"
    args = ["--annotations", gt_path, "--images", shared_data / "coco-sample", "--device", "cpu", "--limit", "2",
            "--summary", summary, "--results", tmp_path / "results.json"]  # fmt: skip
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert err.count("not scored: head_bottom, head_top") == 1
    assert "Scored joints (15 of 17)" in out
    values = json.loads(summary.read_text())["metrics"]
    assert values["AP50"] > 0.5 and values["PCK@0.2"] > 0.5
    results = json.loads((tmp_path / "results.json").read_text())
    assert results and all(len(r["keypoints"]) == 3 * 17 for r in results)
    head = [r["keypoints"][3 * POSETRACK17.index("head_top") + 2] for r in results]
    assert head == [0.0] * len(results)  # written with confidence 0: not predicted


def test_every_pipeline_model_has_a_layout() -> None:
    from pose_ros.core.pipeline import BOTTOM_UP_MODELS, TOP_DOWN_MODELS

    assert set(BOTTOM_UP_MODELS + TOP_DOWN_MODELS) <= set(evaluate.MODEL_LAYOUTS)
