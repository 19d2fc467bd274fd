"""Input errors name the device, file or topic and say what to do: a missing camera, files in an unknown format,
an unknown image encoding."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import Image

from pose_ros.core.sources import SourceError, open_source
from pose_ros.ros import image_source
from pose_ros.ros.image_conversion import ImageConversionError, to_rgb8


def absent_camera_index() -> int:
    index = 57
    while Path(f"/dev/video{index}").exists():
        index += 1
    return index


@pytest.mark.parametrize("form", ["/dev/video{}", "{}"])
def test_missing_camera_names_the_device_and_what_to_do(form) -> None:
    index = absent_camera_index()
    with pytest.raises(SourceError) as raised:
        open_source(form.format(index))
    message = str(raised.value)
    assert f"/dev/video{index} does not exist" in message
    assert "plug the camera in" in message and "v4l2-ctl --list-devices" in message
    present = sorted(str(p) for p in Path("/dev").glob("video*"))
    assert (", ".join(present) in message) if present else "no /dev/video* device exists" in message


def test_image_source_with_camera_index_parameter_reports_the_missing_camera(capsys) -> None:
    """`-p source:=0` is an integer parameter: image_source takes it as camera 0 and explains that it is absent."""
    if Path("/dev/video0").exists():
        pytest.skip("this machine has /dev/video0")
    status = image_source.main(["image_source", "--ros-args", "-p", "source:=0"])
    assert status == 1
    error = capsys.readouterr().err
    assert "image_source: camera '0': /dev/video0 does not exist" in error


def test_folder_with_a_file_in_an_unknown_format(tmp_path) -> None:
    cv2.imwrite(str(tmp_path / "00.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "01.png").write_text("not an image")
    with pytest.raises(SourceError, match=r"folder .*: 1 file\(s\) in an unknown image format.*01\.png.*convert"):
        open_source(str(tmp_path))


def test_video_file_in_an_unknown_format(tmp_path) -> None:
    path = tmp_path / "clip.avi"
    path.write_text("not a video")
    with pytest.raises(SourceError, match=r"cannot open video .*clip\.avi: OpenCV cannot decode.*ffmpeg -i clip"):
        open_source(str(path))


def test_unknown_encoding_says_what_to_publish_instead() -> None:
    msg = Image(height=2, width=2, encoding="bayer_rggb8", step=2, data=bytes(4))
    with pytest.raises(ImageConversionError) as raised:
        to_rgb8(msg)
    message = str(raised.value)
    assert "unsupported encoding 'bayer_rggb8'" in message
    assert "publish one of these (bgr8 or rgb8" in message and "image_transport: compressed" in message
