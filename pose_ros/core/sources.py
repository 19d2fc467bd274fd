"""Frame sources for trying the package without a robot: a video file, an image folder or a camera.

`open_source(spec)` picks the kind from the spec: an existing directory → its images in name order;
"/dev/videoN" or a plain integer → a V4L2 camera; anything else → a video file.
Frames are BGR uint8 (H, W, 3), as OpenCV reads them.
"""

from __future__ import annotations

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
        else:
            self._open_capture()

    def _open_capture(self) -> None:
        target: int | str = _camera_index(self.spec) if self.kind == "camera" else str(Path(self.spec).expanduser())
        if self.kind == "video" and not Path(target).is_file():
            raise SourceError(f"video file not found: {target}")
        capture = cv2.VideoCapture(target, cv2.CAP_V4L2) if self.kind == "camera" else cv2.VideoCapture(target)
        if not capture.isOpened():
            raise SourceError(f"cannot open {self.kind} {self.spec!r}")
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
