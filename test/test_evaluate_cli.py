"""The evaluation command (pose_ros.tools.evaluate) end to end on the shared COCO and MPII samples."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from coco_detections import jittered_coco_detections
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pose_ros.core.metrics import COCO_KEYPOINT_STATS
from pose_ros.core.skeletons import COCO17, MPII16
from pose_ros.tools import evaluate


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = evaluate.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def pycocotools_stats(gt_path: Path, results_path: Path) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt_path))
        evaluator = COCOeval(coco, coco.loadRes(str(results_path)), "keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def test_coco_detections_file_agrees_with_pycocotools_and_renders(shared_data: Path, tmp_path: Path, capsys) -> None:
    gt_path = shared_data / "coco-sample" / "test_coco.json"
    gt = json.loads(gt_path.read_text())
    detections = tmp_path / "in.json"
    detections.write_text(json.dumps(jittered_coco_detections(gt, noise_px=4.0, seed=0)))
    args = ["--annotations", str(gt_path), "--detections", str(detections), "--results", str(tmp_path / "out.json"),
            "--summary", str(tmp_path / "summary.json"), "--render", str(tmp_path / "render")]  # fmt: skip
    code, out, _ = run(args, capsys)
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    expected = pycocotools_stats(gt_path, tmp_path / "out.json")
    np.testing.assert_allclose([summary["metrics"][k] for k in COCO_KEYPOINT_STATS], expected, atol=1e-6)
    assert summary["metrics"]["AP50"] == pytest.approx(1.0) and summary["metrics"]["PCK@0.2"] > 0.8
    assert "| AP |" in out and "| PCK@0.2 |" in out
    for img in gt["images"]:
        render = cv2.imread(str(tmp_path / "render" / (Path(img["file_name"]).stem + ".png")))
        assert render.shape[1] == 2 * img["width"] and render.shape[0] > img["height"]


def mpii_detections(entries: list[dict[str, Any]], wrist_shift: float) -> list[dict[str, Any]]:
    """COCO-17 detections from MPII ground truth: limb joints as annotated, the face at the head top.

    The wrists are moved right by `wrist_shift` head segments (head top to upper neck).
    """
    dets = []
    for entry in entries:
        joints = np.asarray(entry["joints"], float)
        head = np.linalg.norm(joints[MPII16.index("head_top")] - joints[MPII16.index("upper_neck")])
        kp = np.zeros((17, 3))
        kp[:, :2] = joints[MPII16.index("head_top")]
        for i, name in enumerate(COCO17.keypoints):
            if name in MPII16.keypoints:
                kp[i, :2] = joints[MPII16.index(name)]
                if name.endswith("wrist"):
                    kp[i, 0] += wrist_shift * head
        kp[:, 2] = 1.0
        dets.append({"image_id": entry["image"], "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 1.0})
    return dets


@pytest.mark.parametrize(("wrist_shift", "wrist_pckh"), [(0.0, 1.0), (0.6, 0.0)])
def test_mpii_pckh_from_detections(shared_data: Path, tmp_path: Path, capsys, wrist_shift, wrist_pckh) -> None:
    gt_path = shared_data / "mpii-sample" / "test_mpii.json"
    detections = tmp_path / "dets.json"
    detections.write_text(json.dumps(mpii_detections(json.loads(gt_path.read_text()), wrist_shift)))
    summary_path = tmp_path / "summary.json"
    code, out, _ = run(["--annotations", str(gt_path), "--detections", str(detections), "--summary", str(summary_path)],
                       capsys)  # fmt: skip
    assert code == 0, out
    values = json.loads(summary_path.read_text())["metrics"]
    assert values["PCKh@0.5 wrist"] == wrist_pckh
    assert values["PCKh@0.5 elbow"] == 1.0 and values["PCK@0.2 knee"] == 1.0
    assert "head-top–upper-neck distance" in out
    assert "thorax, upper_neck, head_top" in out


def test_unavailable_model_is_reported(shared_data: Path, tmp_path: Path, capsys) -> None:
    gt_path = shared_data / "coco-sample" / "test_coco.json"
    code, _, err = run(["--annotations", str(gt_path), "--model", "openpose", "--weights", str(tmp_path / "no.pth")],
                       capsys)  # fmt: skip
    assert code == 2 and "not available" in err and "openpose" in err


def test_movenet_bottom_up_on_the_coco_sample(shared_data: Path, human_models: Path, tmp_path: Path, capsys) -> None:
    gt_path = shared_data / "coco-sample" / "test_coco.json"
    results = tmp_path / "movenet.json"
    args = ["--annotations", str(gt_path), "--mode", "bottom_up", "--model", "movenet_multipose", "--device", "cpu",
            "--results", str(results), "--summary", str(tmp_path / "summary.json")]  # fmt: skip
    code, _, err = run(args, capsys)
    assert code == 0, err
    values = json.loads((tmp_path / "summary.json").read_text())["metrics"]
    np.testing.assert_allclose([values[k] for k in COCO_KEYPOINT_STATS], pycocotools_stats(gt_path, results), atol=1e-6)
    # A real multi-person model finds most of these people: far above chance, below perfect.
    assert 0.3 < values["AP50"] <= 1.0 and values["PCK@0.2"] > 0.5


def test_mpii_head_boxes_switch_to_the_official_rule(shared_data: Path, tmp_path: Path, capsys) -> None:
    entries = json.loads((shared_data / "mpii-sample" / "test_mpii.json").read_text())
    for entry in entries:  # square head boxes whose MPII head size is twice the head segment
        joints = np.asarray(entry["joints"], float)
        segment = np.linalg.norm(joints[MPII16.index("head_top")] - joints[MPII16.index("upper_neck")])
        half = segment / (0.6 * np.sqrt(2))
        x, y = joints[MPII16.index("head_top")]
        entry["head_box"] = [x - half, y - half, x + half, y + half]
    gt_path = tmp_path / "with_boxes.json"
    gt_path.write_text(json.dumps(entries))
    detections = tmp_path / "dets.json"
    detections.write_text(json.dumps(mpii_detections(entries, wrist_shift=0.6)))
    summary = tmp_path / "summary.json"
    args = ["--annotations", str(gt_path), "--images", str(shared_data / "mpii-sample"), "--detections",
            str(detections), "--summary", str(summary)]  # fmt: skip
    code, out, _ = run(args, capsys)
    assert code == 0
    assert json.loads(summary.read_text())["metrics"]["PCKh@0.5 wrist"] == 1.0  # 0.6 segments < 0.5 head sizes
    assert "MPII head-box rule" in out


def test_top_down_on_two_coco_images(shared_data: Path, human_models: Path, tmp_path: Path, capsys) -> None:
    gt_path = shared_data / "coco-sample" / "test_coco.json"
    summary = tmp_path / "summary.json"
    args = ["--annotations", str(gt_path), "--mode", "top_down", "--model", "movenet_thunder", "--device", "cpu",
            "--limit", "2", "--summary", str(summary)]  # fmt: skip
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert "centernet+movenet_thunder" in out and "2 images" in out
    values = json.loads(summary.read_text())["metrics"]
    assert values["AP50"] > 0.5 and values["PCK@0.2"] > 0.5


def test_model_must_belong_to_the_mode(shared_data: Path, capsys) -> None:
    gt_path = shared_data / "coco-sample" / "test_coco.json"
    code, _, err = run(["--annotations", str(gt_path), "--mode", "top_down", "--model", "openpose"], capsys)
    assert code == 2 and "not a top_down model" in err


def test_pck_pairs_only_people_above_the_minimum_score(shared_data: Path, tmp_path: Path, capsys) -> None:
    gt_path = shared_data / "coco-sample" / "test_coco.json"
    dets = jittered_coco_detections(json.loads(gt_path.read_text()), noise_px=2.0, seed=1)
    detections = tmp_path / "low.json"
    detections.write_text(json.dumps([dict(d, score=0.1) for d in dets]))
    pck = {}
    for min_score in ("0.2", "0.05"):
        summary = tmp_path / f"summary_{min_score}.json"
        args = ["--annotations", str(gt_path), "--detections", str(detections), "--summary", str(summary),
                "--pck-min-score", min_score]  # fmt: skip
        assert run(args, capsys)[0] == 0
        pck[min_score] = json.loads(summary.read_text())["metrics"]
    assert pck["0.2"]["PCK@0.2"] == 0.0 and pck["0.05"]["PCK@0.2"] > 0.8
    assert pck["0.2"]["AP"] == pck["0.05"]["AP"] > 0.5  # AP ranks every detection whatever its score


# ----------------------------------------------------------------------------------------------------------
# Every unusable argument or file: exit 2 with one line on stderr, before any model is built.


def _coco_file(tmp_path: Path, gt_path: Path, edit) -> Path:
    gt = json.loads(gt_path.read_text())
    edit(gt)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(gt))
    return path


def _no_image(gt: dict[str, Any]) -> None:
    gt["images"][1]["file_name"] = "missing/000.jpg"


def _bad_count(gt: dict[str, Any]) -> None:
    gt["categories"][0]["keypoints"] = gt["categories"][0]["keypoints"][:14]


def _no_overlap(gt: dict[str, Any]) -> None:
    gt["categories"][0]["keypoints"] = [f"marker_{i}" for i in range(17)]


def _no_names(gt: dict[str, Any]) -> None:
    del gt["categories"][0]["keypoints"]


def _unknown_image(gt: dict[str, Any]) -> None:
    gt["annotations"][0]["image_id"] = 999


BAD_INPUTS = {
    "input size without height": (["--input-size", "256"], None, "expected WIDTHxHEIGHT such as 512x384"),
    "input size not multiple of 32": (["--input-size", "250x200"], None, "multiples of 32"),
    "negative limit": (["--limit", "-1"], None, "expected a whole number"),
    "no people": (["--max-people", "0"], None, "max_people must be in"),
    "score out of range": (["--pck-min-score", "2"], None, "expected a number in [0, 1]"),
    "model of the other mode": (["--mode", "top_down", "--model", "openpose"], None, "not a top_down model"),
    "unknown option": (["--frobnicate"], None, "unrecognized arguments"),
    "annotation file missing": (["--annotations", "{tmp}/none.json"], None, "does not exist"),
    "annotation file not JSON": (["--annotations", "{tmp}/text.json"], None, "is not valid JSON"),
    "not an annotation file": (["--annotations", "{tmp}/other.json"], None, "neither a COCO keypoint file"),
    "keypoint count mismatch": ([], _bad_count, "has 51 keypoint values; its category names 14 joints"),
    "no joint names": ([], _no_names, "has no 'keypoints' list naming its joints"),
    "no joint in common": ([], _no_overlap, "no joint of the annotations"),
    "annotation of unknown image": ([], _unknown_image, "refers to image 999"),
    "image folder missing": (["--images", "{tmp}/nowhere"], None, "does not exist"),
    "image missing": ([], _no_image, "missing/000.jpg"),
    "detections missing": (["--detections", "{tmp}/none.json"], None, "detections file"),
    "detections of another layout": (["--detections", "{tmp}/five.json"], None, "detections have 5 keypoints"),
    "render folder is a file": (["--render", "{tmp}/text.json"], None, "is a file"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_stops_with_one_line(case: str, shared_data: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    extra, edit, reason = BAD_INPUTS[case]
    gt_path = shared_data / "coco-sample" / "test_coco.json"
    (tmp_path / "text.json").write_text("this is not json")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    (tmp_path / "five.json").write_text(json.dumps([{"image_id": 785, "category_id": 1, "keypoints": [0] * 15,
                                                      "score": 1.0}]))  # fmt: skip
    if edit is not None:
        gt_path = _coco_file(tmp_path, gt_path, edit)

    def no_inference(config):
        raise AssertionError("a model was built for unusable input")

    monkeypatch.setattr(evaluate, "build_estimator", no_inference)
    args = ["--annotations", str(gt_path), "--images", str(shared_data / "coco-sample")]
    args += [a.format(tmp=tmp_path) for a in extra]
    code, out, err = run(args, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("evaluate: "), err
    assert reason in err, err
