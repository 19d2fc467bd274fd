"""MeshWorker scheduling: newest frame wins, rate limit, results keyed by track id and stamped, retired tracks
forgotten, errors reported. The stage here is a plain recording callable: what is under test is the worker's
scheduling, not a body model (the real stages run in test_mesh_node.py)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from pose_ros.core.meshing import MeshFit, MeshJob, MeshWorker
from pose_ros.core.person import BodyModelParams, Person


class RecordingStage:
    """Fits every person (a body whose translation is the frame's number); can hold a call until released."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[float, int]] = []  # (start time, frame number)
        self.hold = threading.Event()
        self.hold.set()
        self.started = threading.Event()
        self.fail = False

    def __call__(self, image_rgb, people, camera_matrix, max_faces) -> list[MeshFit | None]:
        number = int(image_rgb[0, 0, 0])
        self.calls.append((time.monotonic(), number))
        self.started.set()
        self.hold.wait(10)
        if self.fail:
            raise RuntimeError("fit diverged")
        return [
            MeshFit(BodyModelParams("test", np.zeros(1), np.zeros(3), np.full(3, number, np.float32)), None)
            if person.confidences.sum() > 0
            else None
            for person in people
        ]

    def reset(self) -> None:
        pass


def person(track: int, fittable: bool = True) -> Person:
    confidences = np.full(17, 0.9 if fittable else 0.0, np.float32)
    return Person(np.zeros((17, 2), np.float32), confidences, 0.9, np.zeros(4, np.float32), "coco17", track, True)


def job(number: int, people: list[Person], live=(), interval_s: float = 0.0) -> MeshJob:
    image = np.full((4, 4, 3), number, np.uint8)
    return MeshJob(number * 1000, image, tuple(people), np.eye(3), 0, interval_s, frozenset(live))


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.fixture
def stage():
    return RecordingStage()


def test_newest_frame_wins_and_results_are_keyed_by_track_and_stamped(stage) -> None:
    worker = MeshWorker(stage, nice=0, warm=False)
    try:
        stage.hold.clear()
        worker.submit(job(1, [person(7), person(8)]))
        assert stage.started.wait(10)
        for number in (2, 3, 4):  # arrive while frame 1 is being fitted: only the newest is fitted next
            worker.submit(job(number, [person(7), person(9)]))
        stage.hold.set()
        wait_for(lambda: worker.stats.fits == 2)
        assert [number for _, number in stage.calls] == [1, 4]
        assert worker.stats.skipped == 2
        latest = worker.latest()
        assert latest[7].stamp_ns == 4000 and latest[9].stamp_ns == 4000
        assert latest[7].fit.body_model.translation[0] == 4
        assert 8 not in latest, "track 8 was not in frame 4 and is not live: forgotten"
    finally:
        worker.close()


def test_live_tracks_keep_their_mesh_and_unfitted_people_keep_the_old_one(stage) -> None:
    worker = MeshWorker(stage, nice=0, warm=False)
    try:
        worker.submit(job(1, [person(1), person(2)]))
        wait_for(lambda: worker.stats.fits == 1)
        worker.submit(job(2, [person(1, fittable=False)], live={1, 2}))  # 2 missed in this frame, still tracked
        wait_for(lambda: worker.stats.fits == 2)
        latest = worker.latest()
        assert latest[1].stamp_ns == 1000, "not fittable in frame 2: keeps the mesh of frame 1"
        assert latest[2].stamp_ns == 1000, "a live track out of this frame keeps its mesh"
        worker.submit(job(3, [person(1)], live={1}))
        wait_for(lambda: worker.stats.fits == 3)
        assert set(worker.latest()) == {1} and worker.latest()[1].stamp_ns == 3000
    finally:
        worker.close()


def test_fits_are_at_most_one_per_interval(stage) -> None:
    worker = MeshWorker(stage, nice=0, warm=False)
    try:
        for number in range(1, 40):
            worker.submit(job(number, [person(1)], interval_s=0.25))
            time.sleep(0.02)
        wait_for(lambda: worker.stats.fits >= 3)
        starts = [t for t, _ in stage.calls]
        assert min(np.diff(starts)) >= 0.25 - 1e-3
        assert stage.calls[1][1] > 1, "after a pause the newest waiting frame is fitted"
    finally:
        worker.close()


def test_run_now_returns_this_frames_fits_and_errors_are_reported(stage) -> None:
    errors = []
    worker = MeshWorker(stage, nice=0, warm=False, on_error=errors.append)
    try:
        fits = worker.run_now(job(5, [person(0), person(1, fittable=False)]), timeout_s=10)
        assert fits[0].body_model.translation[0] == 5 and fits[1] is None
        assert worker.latest() == {}, "run_now results belong to their frame only"
        stage.fail = True
        with pytest.raises(RuntimeError, match="diverged"):
            worker.run_now(job(6, [person(0)]), timeout_s=10)
        worker.submit(job(7, [person(0)]))
        wait_for(lambda: errors)
        assert "diverged" in str(errors[0]) and worker.stats.failures == 2
        stage.fail = False
        worker.submit(job(8, [person(0)]))
        wait_for(lambda: 0 in worker.latest())  # the worker goes on after a failure
    finally:
        worker.close()
