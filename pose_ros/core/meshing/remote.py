"""A mesh stage in a process of its own, behind the same call signature.

Fitting a body model is many small torch operations: mostly Python, holding the interpreter lock. In the node's
process it would stall the 2D path whenever that needs the lock (measured: the 2D rate fell to ~3/4 with the fit on
a thread of the node's process, even at a lower priority: the lock holder then runs only when the CPU is idle).
`RemoteMeshStage` runs the stage in a child process (`python -m pose_ros.core.meshing.remote`) at a lower CPU
priority with one torch thread; each call sends the frame and its people (pickled, a pipe) and waits for the fits,
so the calling thread (the mesh worker's) just waits on a pipe, without the lock. Several cameras of one process
can share one child (`MeshProcess`, one session per camera): one body model in memory, one fitter per camera.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pose_ros.core.meshing.stages import MeshConfig, MeshFit
from pose_ros.core.person import Person

_HEADER = struct.Struct("<Q")


def _send(stream: BinaryIO, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: BinaryIO) -> object:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the mesh process ended")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the mesh process ended")
    return pickle.loads(data)


class MeshProcess:
    """A child process running the stage `config` asks for, for one or more sessions (`RemoteMeshStage`s).

    Every session has its own stage object in the child (a fitter with its own warm starts per track); the body
    model behind them is loaded once in the child (`pose_ros.core.model_cache`). Requests of all sessions go
    through one pipe, one at a time. The child ends when its last session closes.

    Args:
        config: which stage (not "none").
        nice: niceness of the child process (the 2D path goes first); 0 keeps the parent's.
        num_threads: torch threads of the child.
    Raises RuntimeError when the child cannot start.
    """

    def __init__(self, config: MeshConfig, nice: int = 10, num_threads: int = 1) -> None:
        config.validate()
        self.config = config
        root = str(Path(__file__).resolve().parents[3])  # this checkout's pose_ros first, as in the parent
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH")))))
        env["OMP_NUM_THREADS"] = str(num_threads)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "pose_ros.core.meshing.remote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self._lock = threading.Lock()
        self._ready = False
        self._error: Exception | None = None  # what building the stage raised (the child has then ended)
        self._sessions: set[int] = set()
        self._closed = False
        _send(self._process.stdin, (config, nice, num_threads))

    @property
    def usable(self) -> bool:
        """False once closed or failed: a new session needs a new process."""
        return not self._closed and self._error is None

    def wait_ready(self) -> None:
        """Wait until the child built its stage; raise what building it raised."""
        with self._lock:
            self._wait_ready_locked()

    def _wait_ready_locked(self) -> None:
        if self._error is not None:
            raise self._error
        if self._ready:
            return
        reply = self._reply()
        if reply[0] != "ready":
            self._error = reply[1]
            self._close_locked()
            raise reply[1]
        self._ready = True

    def _reply(self) -> tuple:
        try:
            return _receive(self._process.stdout)
        except EOFError as error:
            raise RuntimeError(f"mesh process (exit code {self._process.poll()}) ended: {error}") from None

    def request(self, *message: object) -> object:
        """Send one request (after the child is ready) and return its result; raise the child's error."""
        with self._lock:
            self._wait_ready_locked()
            _send(self._process.stdin, message)
            reply = self._reply()
        if reply[0] == "error":
            raise reply[1]
        return reply[1]

    def open_session(self) -> int:
        """A new session id: the first one uses the stage the child builds (and warms) at start, later ones get a
        stage of their own in the child, around the same body model (this waits until the child is ready)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("mesh process closed")
            if not self._sessions:
                self._sessions.add(0)
                return 0
        session = int(self.request("open"))
        with self._lock:
            self._sessions.add(session)
        return session

    def close_session(self, session: int, timeout_s: float = 5.0) -> None:
        """End `session`; the child ends with the last one."""
        with self._lock:
            self._sessions.discard(session)
            last = not self._sessions
        if last:
            self.close(timeout_s)
            return
        with contextlib.suppress(RuntimeError, OSError, ValueError):  # the child ended already: nothing to close
            self.request("close", session)

    def close(self, timeout_s: float = 5.0) -> None:
        """End the child process (killed when it does not end within `timeout_s`)."""
        with self._lock:
            self._close_locked(timeout_s)

    def _close_locked(self, timeout_s: float = 5.0) -> None:
        self._closed = True
        with contextlib.suppress(OSError, ValueError):
            self._process.stdin.close()
        try:
            self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __del__(self) -> None:
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            process.kill()


class RemoteMeshStage:
    """The stage `config` asks for, run in a child process (see the module docstring).

    Args:
        config: which stage (not "none").
        nice: niceness of the child process (the 2D path goes first); 0 keeps the parent's.
        num_threads: torch threads of the child.
        wait: wait until the stage is ready (else call `wait_ready` before the first call: the child loads its
            model meanwhile, e.g. while the caller loads another).
        process: a `MeshProcess` to share (several cameras, one body model): this stage is one session of it;
            None starts a process of its own.
    Raises what creating the stage raises in the child (ValueError, FileNotFoundError, RuntimeError naming the
    cause), and RuntimeError when the child cannot start.
    """

    def __init__(
        self,
        config: MeshConfig,
        nice: int = 10,
        num_threads: int = 1,
        wait: bool = True,
        process: MeshProcess | None = None,
    ) -> None:
        config.validate()
        self.name = config.resolved_model()
        self.process = process if process is not None else MeshProcess(config, nice, num_threads)
        self._session = self.process.open_session()
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Wait until the child built its stage; raise what building it raised (the child has then ended)."""
        self.process.wait_ready()

    def __call__(
        self, image_rgb: np.ndarray, people: list[Person], camera_matrix: np.ndarray, max_faces: int
    ) -> list[MeshFit | None]:
        return self.process.request("fit", self._session, image_rgb, people, camera_matrix, max_faces)

    def reset(self) -> None:
        self.process.request("reset", self._session)

    def close(self, timeout_s: float = 5.0) -> None:
        """End this session (and the child process with its last session)."""
        self.process.close_session(self._session, timeout_s)


def _portable(error: Exception) -> Exception:
    """`error` itself when it survives pickling, else a RuntimeError with its type and text."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


def _serve() -> None:
    """The child: build the stage, then answer fit/reset requests until stdin closes (the parent ended or closed
    it). Ctrl-C reaches the whole process group: the child leaves stopping to its parent."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel_out = os.fdopen(os.dup(1), "wb")  # the protocol; libraries printing to stdout go to stderr instead
    os.dup2(2, 1)
    channel_in = sys.stdin.buffer
    config, nice, num_threads = _receive(channel_in)
    import torch

    from pose_ros.core.meshing.stages import create_mesh_stage, warm_up

    torch.set_num_threads(num_threads)
    from pose_ros.core.model_cache import ModelCache

    models = ModelCache()  # the body model, once for every session's stage
    try:
        stages = {0: create_mesh_stage(config, models)}
        warm_up(stages[0])
    except Exception as error:  # reported to the parent, which raises it
        _send(channel_out, ("error", _portable(error)))
        return
    if nice > 0:  # loaded at full priority (start-up is not delayed); fitting yields to the 2D path
        with contextlib.suppress(OSError):
            os.nice(nice)
    _send(channel_out, ("ready",))
    while True:
        try:
            request = _receive(channel_in)
        except EOFError:
            return
        try:
            if request[0] == "open":
                session = max(stages) + 1 if stages else 0
                stages[session] = create_mesh_stage(config, models)
                _send(channel_out, ("done", session))
            elif request[0] == "close":
                stages.pop(request[1], None)
                _send(channel_out, ("done", None))
            elif request[0] == "reset":
                stages[request[1]].reset()
                _send(channel_out, ("done", None))
            else:
                _send(channel_out, ("done", stages[request[1]](*request[2:])))
        except BrokenPipeError:  # the parent is gone (stopped while a fit ran): nothing to answer
            return
        except Exception as error:  # one failed frame; the parent counts it
            try:
                _send(channel_out, ("error", _portable(error)))
            except BrokenPipeError:
                return


if __name__ == "__main__":
    _serve()
