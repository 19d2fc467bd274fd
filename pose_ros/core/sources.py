"""Frame sources for trying the package without a robot: a video file, an image folder or a camera.

`open_source(spec)` picks the kind from the spec: an existing directory → its images in name order;
"/dev/videoN" or a plain integer → a V4L2 camera; anything else → a video file.
Frames are BGR uint8 (H, W, 3), as OpenCV reads them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp")


class SourceError(RuntimeError):
    """The source cannot be opened or read."""


class FrameSource:
    """Iterates BGR frames; `loop=True` restarts files and folders at the end. `fps` is the native rate or 0."""

    def __init__(self, spec: str, loop: bool = False) -> None:
        self.spec = spec
        self.loop = loop
        path = Path(spec).expanduser()
        self.kind = "folder" if path.is_dir() else "camera" if _is_camera(spec) else "video"
        self.fps = 0.0
        self._files: list[Path] = []
        self._capture: cv2.VideoCapture | None = None
        if self.kind == "folder":
            self._files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._files:
                raise SourceError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
            unreadable = [p.name for p in self._files if not cv2.haveImageReader(str(p))]
            if unreadable:
                raise SourceError(
                    f"folder {path}: {len(unreadable)} file(s) in an unknown image format or damaged, e.g. "
                    f"{', '.join(unreadable[:3])}; remove them or convert them to PNG or JPEG"
                )
        else:
            self._open_capture()

    def _open_capture(self) -> None:
        target: int | str = _camera_index(self.spec) if self.kind == "camera" else str(Path(self.spec).expanduser())
        if self.kind == "video" and not Path(target).is_file():
            raise SourceError(f"video file not found: {target}")
        if self.kind == "camera":
            _check_camera_device(self.spec, int(target))
        capture = cv2.VideoCapture(target, cv2.CAP_V4L2) if self.kind == "camera" else cv2.VideoCapture(target)
        if not capture.isOpened():
            if self.kind == "camera":
                raise SourceError(
                    f"cannot open camera /dev/video{target} ({self.spec!r}): it exists but does not deliver video "
                    f"(in use by another program, or a metadata node: try the next /dev/videoN; "
                    f"v4l2-ctl --list-devices shows which one captures)"
                )
            raise SourceError(
                f"cannot open video {target}: OpenCV cannot decode it (an unknown format, or damaged); convert it, "
                f"e.g. ffmpeg -i {Path(target).name} video.mp4, or pass an image folder"
            )
        self._capture = capture
        self.fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            yield from self._frames_once()
            if not self.loop or self.kind == "camera":
                return

    def _frames_once(self) -> Iterator[np.ndarray]:
        if self.kind == "folder":
            for file in self._files:
                frame = cv2.imread(str(file), cv2.IMREAD_COLOR)
                if frame is None:
                    raise SourceError(f"cannot decode image {file}")
                yield frame
            return
        assert self._capture is not None
        if self.kind == "video":
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        while True:
            ok, frame = self._capture.read()
            if not ok:
                return
            yield frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def _is_camera(spec: str) -> bool:
    return spec.startswith("/dev/video") or spec.isdigit()


def _camera_index(spec: str) -> int:
    return int(spec.removeprefix("/dev/video"))


def _check_camera_device(spec: str, index: int) -> None:
    """On Linux, raise SourceError naming /dev/video<index> and what to do when it is absent or not accessible."""
    if not sys.platform.startswith("linux"):
        return
    device = Path(f"/dev/video{index}")
    if not device.exists():
        present = sorted(str(p) for p in Path("/dev").glob("video*"))
        listing = f"present: {', '.join(present)}" if present else "no /dev/video* device exists on this machine"
        raise SourceError(
            f"camera {spec!r}: {device} does not exist ({listing}); plug the camera in, or pick an existing device "
            f"(ls /dev/video*, v4l2-ctl --list-devices), or use a video file or image folder as the source"
        )
    if not os.access(device, os.R_OK | os.W_OK):
        raise SourceError(
            f"camera {spec!r}: no permission to open {device}; add your user to its group "
            f"(sudo usermod -aG video $USER, then log in again)"
        )


def open_source(spec: str, loop: bool = False) -> FrameSource:
    """A FrameSource for `spec` (video file, image folder, /dev/videoN or camera index)."""
    if not spec:
        raise SourceError("no source given: set a video file, an image folder or /dev/videoN")
    return FrameSource(spec, loop)


def read_video_frames(path: str | Path, indices: Iterable[int]) -> list[np.ndarray]:
    """RGB frames (H, W, 3) uint8 of the video at `path` at the given frame indices, in the order given.

    Reads sequentially (exact on every codec); raises SourceError when the video cannot be opened or is
    shorter than the largest index.
    """
    wanted = list(indices)
    capture = cv2.VideoCapture(str(Path(path).expanduser()))
    if not capture.isOpened():
        raise SourceError(f"cannot open video {path}")
    frames: dict[int, np.ndarray] = {}
    wanted_set, index = set(wanted), 0
    last = max(wanted, default=-1)
    while index <= last:
        ok, bgr = capture.read()
        if not ok:
            capture.release()
            raise SourceError(f"{path} has {index} frames; frame {last} was asked for")
        if index in wanted_set:
            frames[index] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        index += 1
    capture.release()
    return [frames[i] for i in wanted]
