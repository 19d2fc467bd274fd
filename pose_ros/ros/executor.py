"""The executor of pose_node and the launcher: rclpy's MultiThreadedExecutor without its busy loop.

rclpy 7.x's MultiThreadedExecutor hands each ready callback (a Task) to a worker thread and waits for more work at
once. Until a worker has *started* that Task, rclpy's wait yields it again ("in progress, not executing, not
done"), so spin_once returns at once, submits it again and appends it to a list it scans on every call. On a
small CPU, where the workers wait for a core, this feeds itself: measured in pose_launcher on the 2-core machine
(vtest.avi at 10 Hz, MoveNet MultiPose), the spin thread made ~3,500 passes a second for ~20 callbacks, held a
list of up to 5,000 copies and took most of a core from inference (2-7 FPS instead of all 10 frames a second).
`bench/bench_executor_spin.py` measures it.

`SpinSafeExecutor` hands a callback over and returns from spin_once only once a worker has taken it (or after
`handover_timeout_s`, so that spin loops still see stop requests while every worker is busy).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from rclpy.executors import (
    ConditionReachedException,
    ExternalShutdownException,
    MultiThreadedExecutor,
    ShutdownException,
    TimeoutException,
)

HANDOVER_TIMEOUT_S = 0.1


class SpinSafeExecutor(MultiThreadedExecutor):
    """A MultiThreadedExecutor whose spin_once waits until a worker thread has taken the callback it handed over."""

    handover_timeout_s = HANDOVER_TIMEOUT_S

    def _spin_once_impl(self, timeout_sec=None, wait_condition: Callable[[], bool] = lambda: False) -> None:
        try:
            handler, _entity, _node = self.wait_for_ready_callbacks(timeout_sec, None, wait_condition)
        except (ExternalShutdownException, ShutdownException, TimeoutException, ConditionReachedException):
            return
        taken = threading.Event()

        def run() -> None:
            taken.set()
            handler()  # a Task: runs once, however often it was handed over

        self._executor.submit(run)
        self._futures.append(handler)
        taken.wait(self.handover_timeout_s)
        for future in self._futures[:]:
            if future.done():
                self._futures.remove(future)
                future.result()  # raise any exception of a callback here, as rclpy does
