"""A clean stop for pose_ros processes, the way ROS 2 stops nodes.

`ros2 launch`, docker and systemd stop a node with SIGINT, then SIGTERM (and finally SIGKILL); Ctrl-C on
`ros2 launch` sends SIGINT to the whole process group, so a node often gets two SIGINTs a few ms apart.
rclpy's own handlers answer a signal by invalidating the context at once, under running callbacks (a publish
then raises `RCLError: publisher's context is invalid`, a spinning executor `ExternalShutdownException`).
Here rclpy installs no handlers; ours only record the stop request (idempotent: a second signal changes
nothing; a watcher thread records it the moment the signal arrives, see `_watch_signals`), and the main
thread then stops in order:

1. stop taking new work: the spin loop ends and publishers see `stop_requested()` (nothing is published
   after the stop began);
2. the callbacks in flight finish (a model call running is completed; no new frame is taken);
3. lifecycle nodes go to Finalized (`on_shutdown`), every node is destroyed (pose_node's model thread is
   joined there), the context is shut down; the process exits 0.

Usage (a node's main):

    shutdown.init(sys.argv)
    node = MyNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        shutdown.spin_until_stopped(executor)
    finally:
        shutdown.stop_nodes(executor, [node])
        shutdown.finish()
    return 0
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import rclpy
from rclpy.context import Context
from rclpy.exceptions import InvalidHandle
from rclpy.executors import Executor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SPIN_PERIOD_S = 0.1  # the spin loop checks for a stop request at least this often
CALLBACK_TIMEOUT_S = 30.0  # how long the stop waits for callbacks in flight (a model call) before going on

_requested = threading.Event()
_reason: list[str] = []  # the first request's reason (e.g. "SIGINT")
_requested_at: list[float] = []  # time.monotonic() of the first request


def request_stop(reason: str) -> None:
    """Ask the process to stop (what the signal handlers do); later requests change nothing."""
    if not _requested.is_set():
        _reason.append(reason)
        _requested_at.append(time.monotonic())
        _requested.set()


def stop_requested() -> bool:
    """True once a stop was requested: publishers must not publish any more."""
    return _requested.is_set()


def stop_reason() -> str | None:
    """Why the stop was requested ("SIGINT", "SIGTERM", ...), None before."""
    return _reason[0] if _reason else None


_executors: list[Executor] = []  # spinning in spin_until_stopped: woken at once by a stop request


def _on_signal(signum: int, frame) -> None:
    request_stop(signal.Signals(signum).name)


def _watch_signals(read_fd: int) -> None:
    """Request the stop as soon as a signal arrives, from this thread.

    Python runs `_on_signal` in the main thread only between bytecodes, so not while it waits in rcl for work
    (up to SPIN_PERIOD_S); a frame thread could publish meanwhile. The interpreter's C-level handler writes each
    signal's number to the wake-up fd at once: reading it here makes `may_publish` false without that delay.
    """
    while True:
        try:
            received = os.read(read_fd, 64)
        except OSError:
            return
        for signum in received:
            if signum in STOP_SIGNALS:
                request_stop(signal.Signals(signum).name)
                for executor in list(_executors):
                    with contextlib.suppress(InvalidHandle, _rclpy.RCLError):  # shut down meanwhile
                        executor.wake()


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM request a stop (from the main thread only, as Python requires)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_signal)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    threading.Thread(target=_watch_signals, args=(read_fd,), name="pose_ros_signals", daemon=True).start()


def init(args: list[str] | None, context: Context | None = None) -> None:
    """rclpy.init without rclpy's signal handlers, and ours instead."""
    install_signal_handlers()
    rclpy.init(args=args, context=context, signal_handler_options=SignalHandlerOptions.NO)


def spin_until_stopped(executor: Executor, done: Callable[[], bool] = lambda: False) -> None:
    """Spin `executor` until a stop is requested, `done()` is true or its context was shut down."""
    _executors.append(executor)
    try:
        while not stop_requested() and not done() and executor.context.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    finally:
        _executors.remove(executor)


def _wait_for_callbacks(executor: Executor, timeout_s: float) -> bool:
    """Let the callbacks already handed to worker threads finish; False if some still run after `timeout_s`.

    rclpy 7.x's Executor.shutdown() does not wait for its callbacks (it tests the flag it has just set), so
    this waits on the MultiThreadedExecutor's worker pool itself. The spin loop has stopped, so no callback is
    added; one per entity at most is in the pool (the executor hands an entity out again only once its
    callback returned), and each ends without publishing (`may_publish`). A SingleThreadedExecutor runs
    callbacks in the spinning thread: once the spin loop returned, none is in flight.
    """
    pool = getattr(executor, "_executor", None)
    if not isinstance(pool, ThreadPoolExecutor):
        return True
    pool.shutdown(wait=False)  # queued callbacks still run: a cancelled one leaves its coroutine never awaited
    deadline = time.monotonic() + timeout_s
    for thread in list(getattr(pool, "_threads", ())):
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    return not any(thread.is_alive() for thread in getattr(pool, "_threads", ()))


def may_publish(node: Node) -> bool:
    """False once a stop was requested or `node`'s context was shut down: the publish guard of the nodes."""
    return not stop_requested() and node.context.ok()


def stop_nodes(
    executor: Executor,
    nodes: Iterable[Node | None],
    close: Iterable[Callable[[], None]] = (),
    callback_timeout_s: float = CALLBACK_TIMEOUT_S,
) -> None:
    """Steps 2-3 of the module docstring, after the spin loop returned: callbacks in flight finish, `close`
    runs (e.g. release a camera), lifecycle nodes are finalized and every node is destroyed. The caller then
    shuts the context down (`rclpy.try_shutdown`)."""
    nodes = [node for node in nodes if node is not None]
    logger = rclpy.logging.get_logger(nodes[0].get_name() if nodes else "pose_ros")
    if stop_reason() is not None:
        logger.info(f"{stop_reason()} received: stopping")
    if not _wait_for_callbacks(executor, callback_timeout_s):
        logger.warning(f"callbacks still running after {callback_timeout_s:.0f} s; stopping anyway")
    executor.shutdown(timeout_sec=0)
    for closer in close:
        closer()
    for node in nodes:
        if isinstance(node, LifecycleNode) and node.context.ok():
            with contextlib.suppress(_rclpy.RCLError):  # raised when already finalized
                node.trigger_shutdown()  # to Finalized, through the node's on_shutdown
        node.destroy_node()
    if stop_reason() is not None:
        logger.info(f"stopped cleanly {(time.monotonic() - _requested_at[0]) * 1000:.0f} ms after {stop_reason()}")


def finish(context: Context | None = None) -> None:
    """The last step: shut the context down, and spare the interpreter's exit its garbage collection passes.

    Everything was destroyed explicitly before; what is left is module state, whose collection passes at exit
    take over a second once torch is imported (1.5 s -> 0.4 s with gc.freeze here; docs/robot.md).
    """
    rclpy.try_shutdown(context=context)
    gc.freeze()
