"""The mesh stage beside the frame path: its own thread, the newest frame wins, results keyed by track id.

The frame path hands every frame to `MeshWorker.submit` (it never waits) and attaches to each tracked person the
newest `FittedMesh` of its track (`MeshWorker.latest`), stamped with the frame it was fitted on. The worker fits at
most once per `min_interval_s` of the newest job, always on the newest frame (older waiting frames are dropped), on
one torch thread at a lower CPU priority, so that on a small CPU the 2D path keeps the cores it needs and meshes get
what is left. Without track ids a mesh cannot follow a person to later frames: `run_now` fits one frame and waits
for it (the node's `tracking: false` path).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from pose_ros.core.meshing.stages import MeshFit, MeshStage, warm_up
from pose_ros.core.person import Person


@dataclass(frozen=True)
class MeshJob:
    """One frame for the mesh stage.

    Attributes:
        stamp_ns: the frame's header stamp, integer nanoseconds (exact, copied into every result).
        image_rgb: (H, W, 3) uint8, not modified.
        people: the frame's people (track ids when tracked; measured `keypoints_3d` are fitting targets); not modified.
        camera_matrix: (3, 3) intrinsics of the image.
        max_faces: decimate meshes to at most this many faces (0: full meshes).
        min_interval_s: at least this long between the starts of two fits (1 / mesh_rate_hz; 0: no pause).
        live_tracks: ids of every live track (also those not seen in this frame): their meshes are kept, the meshes
            of other tracks are forgotten.
    """

    stamp_ns: int
    image_rgb: np.ndarray
    people: tuple[Person, ...]
    camera_matrix: np.ndarray
    max_faces: int = 0
    min_interval_s: float = 0.0
    live_tracks: frozenset[int] = frozenset()


@dataclass(frozen=True)
class FittedMesh:
    """A person's body fitted on the frame with header stamp `stamp_ns` (the frame's person id: `person_id`)."""

    fit: MeshFit
    stamp_ns: int
    person_id: int


@dataclass
class MeshWorkerStats:
    """What the worker did: fits finished, frames skipped for a newer one, failures, and the last fit's time."""

    fits: int = 0
    skipped: int = 0
    failures: int = 0
    last_fit_s: float = 0.0
    fit_s_total: float = 0.0
    people_fitted: int = 0
    started_at: float = field(default_factory=time.monotonic)


class MeshWorker:
    """Runs `stage` on its own thread on the newest submitted frame.

    Args:
        stage: the mesh stage (see `pose_ros.core.meshing.stages`).
        num_threads: torch intra-op threads of the worker thread (per-thread setting with OpenMP).
        nice: niceness added to the worker thread (Linux; 0 keeps the process priority): the 2D path goes first.
        on_error: called with each exception a fit raised (the worker goes on with the next frame).
        warm: first fit a synthetic frame (`stages.warm_up`), so that the first real frame's mesh comes sooner.
    """

    def __init__(
        self,
        stage: MeshStage,
        num_threads: int = 1,
        nice: int = 10,
        on_error: Callable[[Exception], None] | None = None,
        warm: bool = True,
    ) -> None:
        self.stage = stage
        self.stats = MeshWorkerStats()
        self._num_threads, self._nice = num_threads, nice
        self._on_error = on_error
        self._warm = warm
        self._condition = threading.Condition()
        self._pending: tuple[MeshJob, Future | None] | None = None
        self._closed = False
        self._last_start = -np.inf
        self._latest: dict[int, FittedMesh] = {}
        self._thread = threading.Thread(target=self._run, name="pose_meshes", daemon=True)
        self._thread.start()

    # ----- frame path side -------------------------------------------------------------------------------------
    def submit(self, job: MeshJob) -> None:
        """Hand a frame of tracked people to the worker (returns at once; replaces a frame still waiting)."""
        self._put(job, None)

    def run_now(self, job: MeshJob, timeout_s: float | None = None) -> list[MeshFit | None]:
        """Fit `job` on the worker thread (ignoring its rate limit) and return one entry per person of the job.

        Raises the stage's exception, or TimeoutError after `timeout_s`; a job replaced by a newer one before it
        started returns no fits.
        """
        future: Future = Future()
        self._put(job, future)
        return future.result(timeout=timeout_s)

    def fit_tracked(self, job: MeshJob, timeout_s: float | None = None) -> None:
        """Fit `job` now (ignoring its rate limit), wait, and keep its meshes per track as a submitted job's would be
        (offline processing: every due frame gets its own meshes). Raises like `run_now`."""
        fits = self.run_now(job, timeout_s)
        with self._condition:
            self._remember(job, fits)

    def latest(self) -> dict[int, FittedMesh]:
        """Track id → the newest mesh fitted for it (a snapshot; the worker replaces, never mutates, the mapping)."""
        return self._latest

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (a fit in progress finishes first, up to `timeout_s`)."""
        with self._condition:
            self._closed = True
            if self._pending is not None and self._pending[1] is not None:
                self._pending[1].set_result([None] * len(self._pending[0].people))
            self._pending = None
            self._condition.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=timeout_s)
        close = getattr(self.stage, "close", None)  # a stage in its own process ends it
        if close is not None:
            close()

    def _put(self, job: MeshJob, future: Future | None) -> None:
        with self._condition:
            if self._closed:
                if future is not None:
                    future.set_result([None] * len(job.people))
                return
            if self._pending is not None:
                self.stats.skipped += 1
                if self._pending[1] is not None:
                    self._pending[1].set_result([None] * len(self._pending[0].people))
            self._pending = (job, future)
            self._condition.notify_all()

    # ----- worker thread ---------------------------------------------------------------------------------------
    def _take(self) -> tuple[MeshJob, Future | None] | None:
        """The newest job once its rate limit allows (None when closed)."""
        with self._condition:
            while not self._closed:
                if self._pending is None:
                    self._condition.wait()
                    continue
                job, future = self._pending
                wait_s = 0.0 if future is not None else self._last_start + job.min_interval_s - time.monotonic()
                if wait_s <= 0:
                    self._pending = None
                    self._last_start = time.monotonic()
                    return job, future
                self._condition.wait(timeout=wait_s)  # a newer job may replace this one meanwhile
            return None

    def _run(self) -> None:
        import torch

        torch.set_num_threads(self._num_threads)
        if self._nice > 0 and hasattr(os, "setpriority"):
            with contextlib.suppress(OSError):  # not allowed here: the worker runs at the process priority
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice)
        if self._warm:
            try:
                warm_up(self.stage)
            except Exception as error:  # the real frames will report it if it persists
                if self._on_error is not None:
                    self._on_error(error)
        while (taken := self._take()) is not None:
            job, future = taken
            started = time.monotonic()
            try:
                fits = self.stage(job.image_rgb, list(job.people), job.camera_matrix, job.max_faces)
            except Exception as error:
                self.stats.failures += 1
                if future is not None:
                    future.set_exception(error)
                elif self._on_error is not None:
                    self._on_error(error)
                continue
            self.stats.last_fit_s = time.monotonic() - started
            self.stats.fit_s_total += self.stats.last_fit_s
            self.stats.fits += 1
            self.stats.people_fitted += sum(fit is not None for fit in fits)
            if future is not None:
                future.set_result(fits)
            else:
                self._remember(job, fits)

    def _remember(self, job: MeshJob, fits: list[MeshFit | None]) -> None:
        """New meshes replace their tracks' old ones; other live tracks keep theirs; retired tracks are forgotten."""
        live = job.live_tracks | {person.id for person in job.people if person.tracked}
        latest = {track: mesh for track, mesh in self._latest.items() if track in live}
        for person, fit in zip(job.people, fits, strict=True):
            if fit is not None and person.tracked:
                latest[person.id] = FittedMesh(fit, job.stamp_ns, person.id)
        self._latest = latest
