"""Fast unit tests of the TF.js importer (tiny hand-written graphs) and of MoveNet's exact back-mapping."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pose_ros.core.estimators.letterbox import Letterbox
from pose_ros.core.estimators.movenet import MoveNetMultiPose, MoveNetMultiPoseSettings, drop_duplicates
from pose_ros.core.models.tfjs_graph import (
    ModelFileError,
    TfjsGraphModule,
    UnsupportedOpError,
    build_module,
    load_graph,
)
from pose_ros.core.person import Person


def _attr_list(values: list[int]) -> dict:
    return {"list": {"i": [str(v) for v in values]}}


def _attr_str(text: str) -> dict:
    import base64

    return {"s": base64.b64encode(text.encode()).decode()}


def _write_model(folder: Path, nodes: list[dict], weights: list[tuple[str, np.ndarray, str | None]]) -> Path:
    """A TF.js graph model: nodes (besides the Consts made for `weights`) and weights stored as float32,
    int32, or quantized ("float16" / "uint8")."""
    manifest, blobs = [], []
    for name, array, quantization in weights:
        entry = {"name": name, "shape": list(array.shape), "dtype": "int32" if array.dtype == np.int32 else "float32"}
        if quantization == "float16":
            entry["quantization"] = {"dtype": "float16"}
            blobs.append(array.astype("<f2").tobytes())
        elif quantization == "uint8":
            low, scale = float(array.min()), float(array.max() - array.min()) / 255
            entry["quantization"] = {"dtype": "uint8", "min": low, "scale": scale}
            blobs.append(np.round((array - low) / scale).astype(np.uint8).tobytes())
        else:
            blobs.append(array.astype(array.dtype.newbyteorder("<")).tobytes())
        manifest.append(entry)
        nodes = [{"name": name, "op": "Const", "attr": {}}, *nodes]
    (folder / "tiny.bin").write_bytes(b"".join(blobs))
    spec = {
        "format": "graph-model",
        "modelTopology": {"node": nodes},
        "weightsManifest": [{"paths": ["tiny.bin"], "weights": manifest}],
    }
    path = folder / "tiny.json"
    path.write_text(json.dumps(spec))
    return path


def _placeholder(dtype: str = "DT_FLOAT") -> dict:
    return {"name": "x", "op": "Placeholder", "attr": {"dtype": {"type": dtype}}}


def _resize_model(folder: Path, align_corners: bool, half_pixel: bool) -> Path:
    node = {
        "name": "y",
        "op": "ResizeBilinear",
        "input": ["x", "size"],
        "attr": {"align_corners": {"b": align_corners}, "half_pixel_centers": {"b": half_pixel}},
    }
    return _write_model(folder, [_placeholder(), node], [("size", np.array([1, 4], np.int32), None)])


@pytest.mark.parametrize(
    ("align_corners", "half_pixel", "expected"),
    [
        (False, False, [0.0, 5.0, 10.0, 10.0]),  # "asymmetric": source = out * in / out_size (CenterNet)
        (False, True, [0.0, 2.5, 7.5, 10.0]),  # half-pixel centres, clamped at the borders
        (True, False, [0.0, 10 / 3, 20 / 3, 10.0]),  # corners aligned
    ],
)
def test_resize_bilinear_follows_tf_coordinate_modes(tmp_path, align_corners, half_pixel, expected):
    module = build_module(_resize_model(tmp_path, align_corners, half_pixel), (1, 1, 2, 1))
    out = module(torch.tensor([0.0, 10.0]).reshape(1, 1, 2, 1))[0]
    np.testing.assert_allclose(out.reshape(-1).numpy(), expected, atol=1e-6)


def test_fused_conv_matches_numpy_with_tf_same_padding_and_quantized_weights(tmp_path):
    """Stride-2 3×3 SAME conv on an even size pads only bottom/right (TF rule); float16 + uint8 weights."""
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    conv = {
        "name": "y",
        "op": "_FusedConv2D",
        "input": ["x", "w", "b"],
        "attr": {
            "strides": _attr_list([1, 2, 2, 1]),
            "padding": _attr_str("SAME"),
            "fused_ops": {"list": {"s": [_attr_str("BiasAdd")["s"], _attr_str("Relu6")["s"]]}},
        },
    }
    path = _write_model(tmp_path, [_placeholder(), conv], [("w", weights, "float16"), ("b", bias, "uint8")])
    graph = load_graph(path)
    w, b = graph.constants["w"], graph.constants["b"]
    assert np.abs(w - weights).max() < 2e-3 and np.abs(b - bias).max() <= (bias.max() - bias.min()) / 255
    x = rng.normal(size=(1, 6, 6, 2)).astype(np.float32)
    padded = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))  # total padding 1: none before, one after
    expected = np.zeros((1, 3, 3, 4), np.float32)
    for i in range(3):
        for j in range(3):
            patch = padded[0, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3]
            expected[0, i, j] = np.clip(np.einsum("hwc,hwco->o", patch, w) + b, 0, 6)
    out = TfjsGraphModule(graph, {"x": x.shape})(torch.from_numpy(x))[0]
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)


def test_topk_ties_pick_the_lower_index_like_tf(tmp_path):
    node = {"name": "y", "op": "TopKV2", "input": ["x", "k"], "attr": {"sorted": {"b": True}}}
    path = _write_model(tmp_path, [_placeholder(), node], [("k", np.array(4, np.int32), None)])
    values = torch.zeros(1, 4096)
    values[0, [3000, 17]] = torch.tensor([0.5, 0.9])
    module = TfjsGraphModule(load_graph(path), {"x": (1, 4096)}, ["y"])
    assert module.steps[0](values)[1].tolist() == [[17, 3000, 0, 1]]


def test_missing_and_broken_model_files_are_named(tmp_path):
    path = _resize_model(tmp_path, False, True)
    weights = tmp_path / "tiny.bin"
    data = weights.read_bytes()
    weights.write_bytes(data[:-2])
    with pytest.raises(ModelFileError, match=r"tiny\.bin.*truncated"):
        load_graph(path)
    weights.write_bytes(data + b"\0\0\0\0")
    with pytest.raises(ModelFileError, match=r"tiny\.bin"):
        load_graph(path)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match=r"tiny\.bin"):
        load_graph(path)
    path.write_text('{"modelTopology": ')
    with pytest.raises(ModelFileError, match=r"tiny\.json"):
        load_graph(path)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=r"tiny\.json"):
        load_graph(path)


def test_unsupported_op_is_named(tmp_path):
    node = {"name": "fft", "op": "FFT2D", "input": ["x"], "attr": {}}
    path = _write_model(tmp_path, [_placeholder(), node], [("unused", np.zeros(1, np.float32), None)])
    with pytest.raises(UnsupportedOpError, match=r"FFT2D.*fft"):
        build_module(path, (1, 4, 4, 1))


def test_estimator_names_a_missing_model_file(tmp_path, human_models):
    shutil.copy(human_models / "movenet-multipose.json", tmp_path)
    settings = MoveNetMultiPoseSettings(model_dir=str(tmp_path), device="cpu", backend="torch")
    with pytest.raises(FileNotFoundError, match=r"movenet-multipose\.bin"):
        MoveNetMultiPose(settings)


@pytest.mark.parametrize(
    ("image_size", "input_size"), [((300, 500), (384, 512)), ((700, 1000), (192, 256)), ((576, 768), (384, 512))]
)
def test_letterbox_back_mapping_is_exact(image_size, input_size):
    """A smooth blob at a known sub-pixel point is letterboxed with cv2; its centroid in the model input,
    expressed in TF's normalised convention and mapped back, lands on the original point."""
    h, w = image_size
    centre = np.array([0.37 * w + 0.21, 0.61 * h - 0.33])  # (x, y), pixel-centre convention
    ys, xs = np.mgrid[0:h, 0:w]
    sigma = 0.04 * min(h, w)
    image = (200 * np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2)))[..., None]
    letterbox = Letterbox.fit(image_size, input_size)
    assert letterbox.pad_x >= 0 and letterbox.pad_y >= 0 and abs(letterbox.scale_x - letterbox.scale_y) < 0.01
    resized = letterbox.apply(image.astype(np.float32))[..., 0]
    in_ys, in_xs = np.mgrid[0 : input_size[0], 0 : input_size[1]]
    centroid = np.array([(resized * in_xs).sum(), (resized * in_ys).sum()]) / resized.sum()
    normalized_yx = np.array([(centroid[1] + 0.5) / input_size[0], (centroid[0] + 0.5) / input_size[1]])
    np.testing.assert_allclose(letterbox.normalized_to_image(normalized_yx), centre, atol=0.02)


def test_decode_maps_boxes_and_keypoints_to_pixels_sorted_by_score():
    """Hand-made raw output: 2 of 6 candidates above the threshold come back best first, ids 0 and 1."""
    estimator = MoveNetMultiPose.__new__(MoveNetMultiPose)
    estimator.settings = MoveNetMultiPoseSettings(score_threshold=0.3)
    letterbox = Letterbox.fit((300, 500), (384, 512))  # scale 1.024, 38 rows of padding above
    raw = np.zeros((6, 56), np.float32)
    raw[:, 55] = [0.1, 0.5, 0.0, 0.9, 0.29, 0.0]
    raw[3, :51] = np.tile([0.5, 0.25, 0.8], 17)
    raw[3, 51:55] = [0.0, 0.0, 1.0, 0.5]
    people = estimator.decode(raw, letterbox)
    assert [p.score for p in people] == pytest.approx([0.9, 0.5]) and [p.id for p in people] == [0, 1]
    best = people[0]
    expected_x = 0.25 * 512 / 1.024 - 0.5
    expected_y = (0.5 * 384 - 38) / (307 / 300) - 0.5
    np.testing.assert_allclose(best.keypoints_xy, np.tile([expected_x, expected_y], (17, 1)), rtol=1e-6)
    np.testing.assert_allclose(best.confidences, 0.8)
    np.testing.assert_allclose(best.bbox_xywh, [-0.5, -0.5, 250.0, 300.0], atol=1e-3)  # clipped to the image


def test_duplicates_are_dropped_but_neighbours_kept():
    """Two candidates on one person (same keypoints but two limbs) collapse to the better one; a person
    standing right beside them (one box width away) stays."""
    rng = np.random.default_rng(1)
    body = np.column_stack([rng.uniform(100, 140, 17), rng.uniform(50, 250, 17)]).astype(np.float32)

    def person(keypoints: np.ndarray, score: float) -> Person:
        box = np.array([100, 50, 40, 200], np.float32)
        return Person(keypoints, np.full(17, 0.8, np.float32), score, box, "coco17")

    twin = body.copy()
    twin[[9, 10]] += 60  # the duplicate disagrees on both wrists
    neighbour = body + np.float32([45, 0])
    kept = drop_duplicates([person(body, 0.5), person(twin, 0.3), person(neighbour, 0.2)], max_oks=0.7)
    assert [p.score for p in kept] == [0.5, 0.2]
    assert len(drop_duplicates([person(body, 0.5), person(twin, 0.3)], max_oks=1.0)) == 2
