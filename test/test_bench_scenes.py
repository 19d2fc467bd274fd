"""bench/scenes.py reads any COCO-style keypoint file with its image folder (the tracking and top-down overlap
benchmarks take `--annotations FILE --images DIR`)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from bench.scenes import AnnotationSet, load_sprites, person_mask, scaled_sprite, select_sprite_annotations


def _write_dataset(tmp_path):
    """One 200×300 image in images/sub/, three people: a polygon-segmented one, one with only a box and a crowd."""
    folder = tmp_path / "images" / "sub"
    folder.mkdir(parents=True)
    image = np.zeros((300, 200, 3), np.uint8)
    image[20:280, 30:90] = (200, 10, 10)  # person 1, red (RGB)
    image[40:260, 120:170] = (10, 200, 10)  # person 2, green
    cv2.imwrite(str(folder / "a.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    keypoints = [v for k in range(14) for v in (60, 30 + 15 * k, 2)]  # 14 keypoints, CrowdPose-like
    data = {
        "images": [{"id": 7, "file_name": "sub/a.png", "width": 200, "height": 300}],
        "categories": [{"id": 3, "name": "person", "keypoints": [f"k{i}" for i in range(14)]}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "bbox": [30, 20, 60, 260], "keypoints": keypoints,
             "segmentation": [[30, 20, 90, 20, 90, 280, 30, 280]]},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [120, 40, 50, 220], "keypoints": keypoints},
            {"id": 3, "image_id": 7, "category_id": 3, "bbox": [0, 0, 200, 300], "keypoints": keypoints,
             "iscrowd": 1},
            {"id": 4, "image_id": 7, "category_id": 9, "bbox": [0, 0, 20, 200], "keypoints": keypoints},
        ],
    }  # fmt: skip
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(data))
    return path, tmp_path / "images"


def test_any_annotation_file_and_image_folder(tmp_path):
    path, images = _write_dataset(tmp_path)
    annotations = AnnotationSet.load(path, images)
    assert [a["id"] for a in annotations.annotations] == [1, 2, 3]  # category 9 is not the person category
    assert annotations.keypoint_names[0] == "k0" and annotations.by_image().keys() == {7}
    assert select_sprite_annotations(annotations, 5) == [1, 2]  # tallest first, the crowd left out
    first, second = load_sprites(annotations, [1, 2])
    assert first.rgb.shape == (260, 60, 3) and first.mask.all()  # the polygon covers its box
    np.testing.assert_array_equal(first.rgb[130, 30], (200, 10, 10))
    assert second.mask.shape == (220, 50) and second.mask.all()  # no segmentation: the box
    assert first.keypoints.shape == (14, 3) and first.keypoints[0, :2].tolist() == [30, 10]  # sprite pixels
    rgb, mask, keypoints = scaled_sprite(first, 130.0)
    assert rgb.shape[:2] == mask.shape == (130, 30) and keypoints[0, :2].tolist() == [15, 5]
    assert person_mask(annotations.by_id(2), (300, 200)).sum() == 50 * 220


def test_missing_image_and_no_usable_person_are_reported(tmp_path):
    path, _ = _write_dataset(tmp_path)
    annotations = AnnotationSet.load(path, tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError, match=r"a\.png"):
        annotations.image_rgb(7)
    with pytest.raises(ValueError, match="whole upright person"):
        select_sprite_annotations(annotations, 2, min_height=1000.0)
