"""A thread that runs the newest job handed to it: a job not yet started when a newer one comes is dropped.

pose_node builds and publishes each frame's markers and overlay on one (`pose_visuals`): that work is for eyes
(RViz, the browser viewer), it must not hold up the next frame, and a late picture is worth less than the next.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class NewestOnlyThread:
    """Runs submitted callables one at a time, in order, keeping at most one waiting (the newest).

    `dropped` counts jobs replaced before they started; `on_error(exception)` is told of a job that raised
    (the thread goes on with the next one).
    """

    def __init__(self, name: str, on_error: Callable[[Exception], None]) -> None:
        self._on_error = on_error
        self._changed = threading.Condition()
        self._waiting: Callable[[], None] | None = None
        self._busy = False
        self._stopped = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def submit(self, job: Callable[[], None]) -> None:
        """Run `job` after the one running now, instead of any still waiting; ignored once stopped."""
        with self._changed:
            if self._stopped:
                return
            if self._waiting is not None:
                self.dropped += 1
            self._waiting = job
            self._changed.notify_all()

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until no job runs or waits; False if `timeout_s` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._waiting is None and not self._busy, timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Drop the waiting job, let the running one finish (up to `timeout_s`) and end the thread."""
        with self._changed:
            self._stopped = True
            self._waiting = None
            self._changed.notify_all()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._waiting is not None or self._stopped)
                if self._stopped:
                    return
                job, self._waiting, self._busy = self._waiting, None, True
            try:
                job()
            except Exception as error:  # one bad job must not end the thread
                self._on_error(error)
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()
