"""FrameStatistics: rates, latency percentiles and drop counting from DDS publication sequence numbers."""

from __future__ import annotations

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus

from pose_ros.ros.diagnostics import FrameStatistics, diagnostics_message


def test_sequence_gaps_are_counted_as_drops_and_a_restarted_publisher_is_not() -> None:
    stats = FrameStatistics(window_s=10.0)
    for t, sequence in enumerate([1, 2, 5, 6, 10]):  # 3, 4, 7, 8, 9 replaced in the keep-last-1 queue
        stats.on_received(float(t), sequence)
    assert stats.dropped_in_queue == 5
    stats.on_received(6.0, 1)  # the camera driver restarted: its numbering starts again
    stats.on_received(7.0, 2)
    assert stats.dropped_in_queue == 5 and stats.received_total == 7


def test_rates_and_latency_percentiles_over_the_window() -> None:
    stats = FrameStatistics(window_s=2.0)
    for i in range(40):  # 20 Hz for 2 s, latency 10..49 ms
        stats.on_received(i * 0.05, i + 1)
        stats.on_processed(i * 0.05, 10.0 + i)
    input_hz, processed_hz = stats.rates(39 * 0.05)
    assert abs(input_hz - 20.0) <= 0.5 and abs(processed_hz - 20.0) <= 0.5
    p50, p90, p99 = stats.latency_percentiles()
    assert 28 <= p50 <= 31 and p90 > p50 and p99 <= 49
    assert stats.rates(100.0) == (0.0, 0.0)  # everything left the window


def test_diagnostics_warn_on_latency_and_on_missing_input() -> None:
    stats = FrameStatistics()
    idle = diagnostics_message(stats, 0.0, _stamp(), "pose_node", "m", "cpu", {}, 100.0).status[0]
    assert idle.level == DiagnosticStatus.WARN and "no input" in idle.message
    stats.on_received(1.0, 1)
    stats.on_processed(1.0, 250.0)
    slow = diagnostics_message(stats, 1.0, _stamp(), "pose_node", "m", "cpu", {"bad_image": 2}, 100.0).status[0]
    values = {kv.key: kv.value for kv in slow.values}
    assert slow.level == DiagnosticStatus.WARN and "latency" in slow.message
    assert values["errors_bad_image"] == "2" and values["frames_rejected"] == "2"


def test_stage_times_are_medians_over_the_window_and_a_skipped_stage_counts_as_zero() -> None:
    stats = FrameStatistics(window_s=10.0)
    stats.on_processed(0.0, 500.0, {"estimate": 900.0, "publish": 90.0})  # leaves the window
    for i in range(5):
        stages = {"decode": 1.0, "estimate": 100.0 + i, "track": 2.0, "publish": 3.0 + i}
        if i < 3:
            del stages["track"]  # tracking off for these frames
        stats.on_received(20.0 + i, i + 1)
        stats.on_processed(20.0 + i, 150.0, stages)
    stats.rates(24.0)  # trims the window
    assert stats.stage_medians() == {"decode": 1.0, "estimate": 102.0, "publish": 5.0, "track": 0.0}
    status = diagnostics_message(stats, 24.0, _stamp(), "pose_node", "m", "cpu", {}, 1000.0).status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert values["stage_estimate_p50_ms"] == "102.0" and values["stage_publish_p50_ms"] == "5.0"
    assert [k for k in values if k.startswith("stage_")] == [
        "stage_decode_p50_ms", "stage_estimate_p50_ms", "stage_publish_p50_ms", "stage_track_p50_ms"
    ]  # fmt: skip


def test_markers_and_overlay_time_is_reported_only_while_they_are_built() -> None:
    stats = FrameStatistics(window_s=10.0)
    for i, (wall_ms, cpu_ms) in enumerate([(9.0, 2.0), (5.0, 3.0), (6.0, 2.5)]):
        stats.on_visuals(float(i), wall_ms, cpu_ms)
    values = {kv.key: kv.value for kv in diagnostics_message(stats, 3.0, _stamp(), "p", "m", "cpu", {}, 1.0)
              .status[0].values}  # fmt: skip
    assert (values["visuals_p50_ms"], values["visuals_cpu_p50_ms"]) == ("6.0", "2.5")
    assert values["frames_visuals_skipped"] == "0"
    skipped = diagnostics_message(stats, 3.0, _stamp(), "p", "m", "cpu", {}, 1.0, visuals_skipped=4).status[0]
    assert {kv.key: kv.value for kv in skipped.values}["frames_visuals_skipped"] == "4"
    stats.rates(30.0)  # nobody listened for 10 s: nothing built, nothing reported
    values = {kv.key for kv in diagnostics_message(stats, 30.0, _stamp(), "p", "m", "cpu", {}, 1.0).status[0].values}
    assert not {"visuals_p50_ms", "visuals_cpu_p50_ms", "frames_visuals_skipped"} & values


def _stamp() -> Time:
    return Time(sec=1)
