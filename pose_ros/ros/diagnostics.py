"""Health figures of pose_node for /diagnostics: rates, drops, latency percentiles and the median time of each
frame-path stage over a sliding window."""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

# What latency_p*_ms measure (the latency_reference value): live, the image stamp to the publish of its people
# (node clock; includes the camera driver and transport); under use_sim_time stamps are the recording's time, so
# the wall time from the image's receipt by pose_node to the publish.
LATENCY_FROM_STAMP = "image stamp to publish"
LATENCY_FROM_RECEIPT = "receipt to publish (wall clock; use_sim_time)"


class StageClock:
    """Times consecutive stages of one frame: `lap(name)` ends stage `name` (begun at the previous lap)."""

    def __init__(self) -> None:
        self._last_s = time.perf_counter()
        self.stage_ms: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now_s = time.perf_counter()
        self.stage_ms[name] = (now_s - self._last_s) * 1e3
        self._last_s = now_s


class FrameStatistics:
    """Input/processed rates and latencies over the last `window_s` seconds, and drop counts since start.

    Dropped frames are counted from gaps in the image publisher's DDS sequence numbers (frames the
    keep-last-1 queue replaced before pose_node took them), plus frames rejected as bad input.
    """

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._received: deque[float] = deque()
        self._processed: deque[tuple[float, float, dict[str, float]]] = deque()  # (time s, latency ms, stage ms)
        self._visuals: deque[tuple[float, float, float]] = deque()  # (time s, wall ms, CPU ms)
        self._last_sequence: int | None = None
        self.received_total = 0
        self.processed_total = 0
        self.dropped_in_queue = 0

    def on_received(self, now_s: float, publication_sequence: int | None) -> None:
        """A frame arrived at `now_s`; `publication_sequence` is its DDS publication sequence number."""
        self.received_total += 1
        self._received.append(now_s)
        if publication_sequence is not None:
            if self._last_sequence is not None and publication_sequence > self._last_sequence + 1:
                self.dropped_in_queue += publication_sequence - self._last_sequence - 1
            self._last_sequence = publication_sequence  # a restarted publisher starts again from 1
        self._trim(now_s)

    def on_processed(self, now_s: float, latency_ms: float, stage_ms: dict[str, float] | None = None) -> None:
        """A frame's outputs were published at `now_s`, `latency_ms` after its image stamp; `stage_ms`: the time
        each stage of the frame path took on this frame (name -> ms, in path order)."""
        self.processed_total += 1
        self._processed.append((now_s, latency_ms, stage_ms or {}))
        self._trim(now_s)

    def on_visuals(self, now_s: float, wall_ms: float, cpu_ms: float) -> None:
        """A frame's markers and overlay, built beside the frame path, were published at `now_s` after `wall_ms`
        (`cpu_ms` of them on the CPU)."""
        self._visuals.append((now_s, wall_ms, cpu_ms))
        self._trim(now_s)

    def visuals_medians(self) -> tuple[float, float] | None:
        """(wall ms, CPU ms) medians of the markers and overlay work over the window; None without any."""
        if not self._visuals:
            return None
        return float(np.median([w for _, w, _ in self._visuals])), float(np.median([c for _, _, c in self._visuals]))

    def _trim(self, now_s: float) -> None:
        while self._received and self._received[0] < now_s - self.window_s:
            self._received.popleft()
        while self._processed and self._processed[0][0] < now_s - self.window_s:
            self._processed.popleft()
        while self._visuals and self._visuals[0][0] < now_s - self.window_s:
            self._visuals.popleft()

    def rates(self, now_s: float) -> tuple[float, float]:
        """(input Hz, processed Hz) over the window."""
        self._trim(now_s)
        return len(self._received) / self.window_s, len(self._processed) / self.window_s

    def latency_percentiles(self) -> tuple[float, float, float] | None:
        """(p50, p90, p99) latency in ms over the window, or None without processed frames."""
        if not self._processed:
            return None
        p50, p90, p99 = np.percentile([latency for _, latency, _ in self._processed], [50, 90, 99])
        return float(p50), float(p90), float(p99)

    def stage_medians(self) -> dict[str, float]:
        """Median time (ms) of each frame-path stage over the window (a stage a frame skipped counts as 0 ms
        there), in the order they were first seen (the path's): where a frame's time goes."""
        names = list(dict.fromkeys(name for _, _, stages in self._processed for name in stages))
        return {
            name: float(np.median([stages.get(name, 0.0) for _, _, stages in self._processed])) for name in names
        }


def stage_key(name: str) -> str:
    """The /diagnostics key of a frame-path stage's median time."""
    return f"stage_{name}_p50_ms"


def stage_times(values: dict[str, str]) -> dict[str, float]:
    """The frame-path stage medians (name -> ms, in path order) in a pose_node status's key/value pairs."""
    return {key.removeprefix("stage_").removesuffix("_p50_ms"): float(value) for key, value in values.items()
            if key.startswith("stage_") and key.endswith("_p50_ms")}  # fmt: skip


def diagnostics_message(
    stats: FrameStatistics,
    now_s: float,
    stamp,
    node_name: str,
    model: str,
    device: str,
    errors: dict[str, int],
    latency_warning_ms: float,
    latency_reference: str = LATENCY_FROM_STAMP,
    visuals_skipped: int = 0,
) -> DiagnosticArray:
    """One DiagnosticStatus for pose_node: OK, WARN when p90 latency exceeds the limit or no input arrives.
    `visuals_skipped`: frames whose markers and overlay were replaced by a newer frame's before being built."""
    input_hz, processed_hz = stats.rates(now_s)
    latency = stats.latency_percentiles()
    status = DiagnosticStatus(name=f"{node_name}: pose estimation", hardware_id=device)
    status.level, status.message = DiagnosticStatus.OK, "ok"
    if stats.received_total == 0 or input_hz == 0.0:
        status.level, status.message = DiagnosticStatus.WARN, "no input images"
    elif latency is not None and latency[1] > latency_warning_ms:
        status.level = DiagnosticStatus.WARN
        status.message = f"p90 latency {latency[1]:.0f} ms exceeds {latency_warning_ms:.0f} ms"
    values = {
        "model": model,
        "device": device,
        "input_rate_hz": f"{input_hz:.2f}",
        "processed_rate_hz": f"{processed_hz:.2f}",
        "frames_received": str(stats.received_total),
        "frames_processed": str(stats.processed_total),
        "frames_dropped_in_queue": str(stats.dropped_in_queue),
        "frames_rejected": str(sum(errors.values())),
        "latency_reference": latency_reference,
    }
    if latency is not None:
        values |= {f"latency_p{p}_ms": f"{v:.1f}" for p, v in zip((50, 90, 99), latency, strict=True)}
    values |= {stage_key(name): f"{ms:.1f}" for name, ms in stats.stage_medians().items()}
    visuals = stats.visuals_medians()
    if visuals is not None:  # markers and overlay, for listeners, beside the frame path
        values |= {"visuals_p50_ms": f"{visuals[0]:.1f}", "visuals_cpu_p50_ms": f"{visuals[1]:.1f}"}
    if visuals is not None or visuals_skipped:
        values["frames_visuals_skipped"] = str(visuals_skipped)
    values |= {f"errors_{kind}": str(count) for kind, count in sorted(errors.items())}
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array
