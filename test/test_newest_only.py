"""NewestOnlyThread: jobs run in order, one at a time; a newer job replaces a waiting one; errors don't stop it."""

from __future__ import annotations

import threading
import time

from pose_ros.ros.newest_only import NewestOnlyThread


def test_a_waiting_job_is_replaced_by_the_newest_and_the_running_one_finishes() -> None:
    errors: list[Exception] = []
    worker = NewestOnlyThread("test_newest", errors.append)
    release, started = threading.Event(), threading.Event()
    ran: list[int] = []

    def job(index: int) -> None:
        if index == 0:
            started.set()
            release.wait(5.0)
        ran.append(index)

    worker.submit(lambda: job(0))
    assert started.wait(5.0)
    for index in (1, 2, 3):  # 0 runs: 1 and 2 wait in turn and are replaced
        worker.submit(lambda index=index: job(index))
    assert not worker.wait_idle(timeout_s=0.05), "job 0 still runs"
    release.set()
    assert worker.wait_idle(timeout_s=5.0)
    assert ran == [0, 3] and worker.dropped == 2 and not errors
    worker.stop()


def test_a_failing_job_is_reported_and_the_next_one_runs() -> None:
    errors: list[Exception] = []
    worker = NewestOnlyThread("test_newest", errors.append)
    ran = []
    worker.submit(lambda: 1 / 0)
    assert worker.wait_idle(timeout_s=5.0)
    worker.submit(lambda: ran.append("next"))
    assert worker.wait_idle(timeout_s=5.0)
    assert ran == ["next"] and len(errors) == 1 and isinstance(errors[0], ZeroDivisionError)
    worker.stop()


def test_stop_drops_the_waiting_job_and_ignores_later_ones() -> None:
    worker = NewestOnlyThread("test_newest", lambda error: None)
    release, started = threading.Event(), threading.Event()
    ran: list[str] = []
    worker.submit(lambda: (started.set(), release.wait(5.0), ran.append("running")))
    assert started.wait(5.0)
    worker.submit(lambda: ran.append("waiting"))
    stopper = threading.Thread(target=worker.stop)
    stopper.start()
    deadline = time.monotonic() + 5.0
    while not worker.stopped and time.monotonic() < deadline:  # stop() has dropped the waiting job
        time.sleep(0.01)
    release.set()
    stopper.join(5.0)
    worker.submit(lambda: ran.append("after stop"))
    assert worker.wait_idle(timeout_s=1.0)
    assert ran == ["running"]
