"""Loaded models shared between pose pipelines of one process (several cameras, one copy of each model).

A `ModelCache` maps a key (what the model is: kind, configuration, device) to a loaded model. Every pipeline that
asks for the same key gets the same object; the first one to ask builds it. Keys are independent: while one
camera loads a new model (seconds), another camera asking for a model that is already loaded gets it at once, and a
camera that already holds its models never touches the cache at all (its `PosePipeline` keeps them).

The cache holds models weakly: a model stays in memory while some pipeline holds it, and is freed once none does
(a node cleaned up, both cameras switched to another model). Objects that cannot be weakly referenced are held
until `clear`.

What is shared is read-only at run time: onnxruntime sessions (`run` is thread-safe), torch modules in eval mode
under no_grad, the Anny body model. Per-camera state is never shared: the tracker, the Anny fitter's warm starts
(one `AnnyFitter` per camera around the shared body), the mesh worker.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class _Slot:
    """One key's entry: its build lock (one loader per key) and the model (a weak reference, or the object)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ref: Callable[[], Any] | None = None


@dataclass
class CacheStats:
    """What the cache did: models built (loads), requests answered with a loaded model (hits)."""

    builds: int = 0
    hits: int = 0
    build_s_total: float = 0.0


class ModelCache:
    """Thread-safe, process-wide store of loaded models, keyed by what they are (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the slot table only, never held while a model loads
        self._slots: dict[Hashable, _Slot] = {}
        self.stats = CacheStats()

    def get(self, key: Hashable, build: Callable[[], T], usable: Callable[[T], bool] | None = None) -> T:
        """The model for `key`, calling `build()` (on this thread) when none is loaded (or, with `usable`, when the
        loaded one is no longer usable, e.g. a process that ended).

        Two threads asking for one key at once: one builds, the other waits and gets the same object. Threads asking
        for other keys never wait for this build. An exception from `build` reaches every caller that waited for it
        (each retries the build: nothing is stored for a failed build).
        """
        with self._lock:
            slot = self._slots.setdefault(key, _Slot())
        with slot.lock:
            model = slot.ref() if slot.ref is not None else None
            if model is not None and (usable is None or usable(model)):
                with self._lock:
                    self.stats.hits += 1
                return model
            started = time.perf_counter()
            model = build()
            try:
                slot.ref = weakref.ref(model)
            except TypeError:  # no weak references to this type: keep it
                slot.ref = lambda model=model: model
            with self._lock:
                self.stats.builds += 1
                self.stats.build_s_total += time.perf_counter() - started
            return model

    def loaded(self) -> dict[Hashable, Any]:
        """The models alive now, by key."""
        with self._lock:
            slots = list(self._slots.items())
        alive = {key: slot.ref() for key, slot in slots if slot.ref is not None}
        return {key: model for key, model in alive.items() if model is not None}

    def clear(self) -> None:
        """Forget every model (pipelines holding one keep it)."""
        with self._lock:
            self._slots.clear()


def estimator_factory(cache: ModelCache) -> Callable:
    """A `PosePipeline` factory that builds each 2D estimator once per `cache` (keyed by its model configuration).

    Estimators take their per-frame thresholds as call arguments or filter afterwards in `PosePipeline`, so one
    estimator serves cameras with different thresholds; the key (`PosePipeline._model_key`) holds only what changes
    the networks.
    """
    from pose_ros.core.pipeline import create_estimator

    def build(config):
        return cache.get(("estimator", config), lambda: create_estimator(config))

    return build


def mesh_process(cache: ModelCache, config: Any, nice: int) -> Any:
    """The child process running the mesh stage `config` (`pose_ros.core.meshing.remote.MeshProcess`), one per
    cache and configuration: each camera opens a session of its own (its own fitter) around one body model."""
    from pose_ros.core.meshing.remote import MeshProcess

    return cache.get(("mesh_process", config), lambda: MeshProcess(config, nice), usable=lambda p: p.usable)


def anny_body(cache: ModelCache, device: str) -> Any:
    """The Anny body model (`AnnyBody` with the fitter's default bones) on `device`, once per cache and device.

    Each camera wraps it in its own `AnnyFitter` (warm starts per track stay per camera); the body is only read.
    """
    from pose_ros.core.body.anny_body import DEFAULT_BONES, AnnyBody, create_anny_model
    from pose_ros.core.device import resolve_device

    resolved = resolve_device(device)

    def build():
        return AnnyBody(create_anny_model(resolved), DEFAULT_BONES)

    return cache.get(("anny_body", str(resolved), DEFAULT_BONES), build)
