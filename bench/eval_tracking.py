"""Measure the person tracker with the real default estimator (MoveNet MultiPose on the CPU).

(a) Known tracks: real people cut out of the images of any COCO-style keypoint file (`--annotations`,
    `--images`; default the shared COCO sample; the 5 tallest whole upright people, or `--sprite-ids`) with
    their annotated segmentation masks are pasted onto an empty street (the temporal median of vtest.avi,
    which removes its walkers). They walk along known straight paths that cross (nearer people drawn over
    farther ones, sizes scaled with the distance), so every frame has ground-truth ids and boxes. Estimator +
    tracker outputs are scored CLEAR-MOT style: per frame, ground truth and tracker boxes are matched by IoU
    >= 0.5 (previous correspondences kept first, then Hungarian); misses (FN), false positives (FP), id
    switches (IDSW), MOTA = 1 - (FN + FP + IDSW) / GT. Ground truth less than `--min-visibility` visible
    (occluded or outside the image) is "don't care": not a miss when undetected, not a false positive when
    detected (its id switches still count).
(b) vtest.avi (no ground truth): number of tracks, track lengths and fragmentations (a track ends and a new
    one starts within `--frag-gap` frames, its box centre within one box height of where the old one ended).

The estimator's people are cached per frame (~/.cache/pose_ros/bench/tracking_known), so reruns only cost the
trackers; "main" is the tracker module of commit 5bea1cf (before issue 17), run on the same detections.

Run from the repository root:  python -m bench.eval_tracking   (a few minutes on 2 CPU cores the first time)
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from bench.estimator_cache import BASELINE_REF, CachedEstimator, default_cache_dir, load_baseline
from bench.scenes import DEFAULT_ANNOTATIONS, AnnotationSet, Sprite, load_sprites, paste, select_sprite_annotations
from pose_ros.core import assets
from pose_ros.core.boxes import box_iou_xywh
from pose_ros.core.draw import draw_people
from pose_ros.core.person import Person
from pose_ros.core.pipeline import PipelineConfig
from pose_ros.core.sources import read_video_frames
from pose_ros.core.tracking import PersonTracker, TrackerSettings

FPS = 10.0  # vtest.avi's frame rate, used for both sequences
DEFAULT_NAME = "oks (default)"


# ----------------------------------------------------------------------------------------------------------
# Known-track sequence


@dataclass
class Walker:
    """A ground-truth person walking in a straight line from `start` to `end` (feet position, pixels)."""

    gt_id: int
    sprite: Sprite
    first_frame: int
    last_frame: int
    start: tuple[float, float]
    end: tuple[float, float]

    def feet(self, frame: int) -> np.ndarray:
        s = (frame - self.first_frame) / max(self.last_frame - self.first_frame, 1)
        return (1 - s) * np.asarray(self.start) + s * np.asarray(self.end)


@dataclass
class GroundTruth:
    gt_id: int
    bbox_xywh: np.ndarray  # (4,) pixels, the whole person (also its occluded parts), clipped to the image
    visibility: float  # fraction of the person's pixels that are in the image and not covered


def empty_street(video: Path, num_samples: int = 40) -> np.ndarray:
    """RGB (H, W, 3): per-pixel median of frames spread over the video, which removes the moving people."""
    capture = cv2.VideoCapture(str(video))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    for index in np.linspace(0, count - 1, num_samples).astype(int):
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, bgr = capture.read()
        if ok:
            frames.append(bgr)
    capture.release()
    return cv2.cvtColor(np.median(np.stack(frames), axis=0).astype(np.uint8), cv2.COLOR_BGR2RGB)


def known_walkers(sprites: list[Sprite], num_frames: int) -> list[Walker]:
    """Five people on crossing paths; person 3 enters late, person 4 leaves early (frame indices scale)."""
    n = num_frames - 1
    plan = [
        (0, 0, n, (60, 430), (700, 430)),  # left to right
        (1, 0, n, (720, 500), (60, 500)),  # right to left, in front of 0: full crossing
        (2, 0, n, (250, 360), (560, 380)),  # slowly right, behind both
        (3, int(0.3 * n), n, (820, 400), (300, 460)),  # enters from the right, diagonal
        (4, 0, int(0.7 * n), (560, 330), (-80, 350)),  # leaves to the left, far back
    ]
    return [Walker(gt, sprites[gt % len(sprites)], a, b, start, end) for gt, a, b, start, end in plan]


def person_height(feet_y: float) -> float:
    """Perspective of the street: people lower in the image are nearer and taller (pixels)."""
    return 0.55 * feet_y


def render(background: np.ndarray, walkers: list[Walker], frame: int) -> tuple[np.ndarray, list[GroundTruth]]:
    """One frame (H, W, 3) and its ground truth; farther people (smaller feet y) are drawn first."""
    image = background.copy()
    labels = np.full(image.shape[:2], -1, np.int32)
    placed = []
    present = [w for w in walkers if w.first_frame <= frame <= w.last_frame]
    for walker in sorted(present, key=lambda w: w.feet(frame)[1]):
        feet = walker.feet(frame)
        height = person_height(feet[1])
        sprite = walker.sprite
        width = sprite.rgb.shape[1] * height / sprite.rgb.shape[0]
        moving_left = walker.end[0] < walker.start[0]
        rgb, mask = (sprite.rgb[:, ::-1], sprite.mask[:, ::-1]) if moving_left else (sprite.rgb, sprite.mask)
        size = (max(round(width), 1), max(round(height), 1))
        rgb = cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(np.ascontiguousarray(mask).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        x0, y0 = round(feet[0] - size[0] / 2), round(feet[1] - size[1])
        total = int(mask.sum())
        paste(image, labels, rgb, mask, x0, y0, walker.gt_id)
        placed.append((walker.gt_id, np.array([x0, y0, size[0], size[1]], np.float64), total))
    truths = []
    for gt_id, box, total in placed:
        visible = int((labels == gt_id).sum())
        truths.append(GroundTruth(gt_id, _clip_box(box, image.shape), visible / max(total, 1)))
    return image, truths


def _clip_box(box: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
    x1, y1 = min(box[0] + box[2], shape[1]), min(box[1] + box[3], shape[0])
    return np.array([x0, y0, max(x1 - x0, 0.0), max(y1 - y0, 0.0)])


# ----------------------------------------------------------------------------------------------------------
# CLEAR-MOT


@dataclass
class MotCounts:
    gt: int = 0  # ground-truth boxes that count (visible enough)
    tp: int = 0
    fn: int = 0
    fp: int = 0
    idsw: int = 0
    iou_sum: float = 0.0

    @property
    def mota(self) -> float:
        return 1.0 - (self.fn + self.fp + self.idsw) / max(self.gt, 1)

    @property
    def motp(self) -> float:
        """Mean IoU of the true positives."""
        return self.iou_sum / max(self.tp, 1)


def clear_mot(
    truth: list[list[GroundTruth]], hypotheses: list[list[Person]], iou_threshold: float, min_visibility: float
) -> tuple[MotCounts, dict[int, set[int]]]:
    """CLEAR-MOT counts over a sequence, and the set of hypothesis ids each ground-truth person received."""
    counts = MotCounts()
    last_id: dict[int, int] = {}
    ids_per_gt: dict[int, set[int]] = {}
    for gts, hyps in zip(truth, hypotheses, strict=True):
        pairs, iou = _match_frame(gts, hyps, last_id, iou_threshold)
        matched_h = {h for _, h in pairs}
        for g, h in pairs:
            gt, hyp_id = gts[g], hyps[h].id
            counts.idsw += gt.gt_id in last_id and last_id[gt.gt_id] != hyp_id
            last_id[gt.gt_id] = hyp_id
            ids_per_gt.setdefault(gt.gt_id, set()).add(hyp_id)
            if gt.visibility >= min_visibility:
                counts.tp += 1
                counts.iou_sum += iou[g, h]
        matched_g = {g for g, _ in pairs}
        counted = [g for g, gt in enumerate(gts) if gt.visibility >= min_visibility]
        counts.gt += len(counted)
        counts.fn += sum(g not in matched_g for g in counted)
        counts.fp += sum(h not in matched_h for h in range(len(hyps)))
    return counts, ids_per_gt


def _match_frame(
    gts: list[GroundTruth], hyps: list[Person], last_id: dict[int, int], threshold: float
) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Keep last frame's correspondences that still overlap, then Hungarian on IoU for the rest."""
    if not gts or not hyps:
        return [], np.zeros((len(gts), len(hyps)))
    iou = box_iou_xywh(np.stack([g.bbox_xywh for g in gts]), np.stack([h.bbox_xywh for h in hyps]))
    pairs = []
    for g, gt in enumerate(gts):
        for h, hyp in enumerate(hyps):
            if last_id.get(gt.gt_id) == hyp.id and iou[g, h] >= threshold:
                pairs.append((g, h))
    free_g = [g for g in range(len(gts)) if g not in {p[0] for p in pairs}]
    free_h = [h for h in range(len(hyps)) if h not in {p[1] for p in pairs}]
    if free_g and free_h:
        sub = iou[np.ix_(free_g, free_h)]
        rows, cols = linear_sum_assignment(-sub)
        pairs += [(free_g[r], free_h[c]) for r, c in zip(rows, cols, strict=True) if sub[r, c] >= threshold]
    return pairs, iou


# ----------------------------------------------------------------------------------------------------------
# Running estimator and trackers


def detect(frames: list[np.ndarray], estimator: Callable[[np.ndarray], list[Person]]) -> tuple[list, float]:
    """People per frame and the mean estimator time per frame in seconds."""
    start = time.perf_counter()
    detections = [estimator(frame) for frame in frames]
    return detections, (time.perf_counter() - start) / max(len(frames), 1)


def track(detections: list[list[Person]], settings) -> tuple[list[list[Person]], float]:
    """Tracker output per frame (on copies) and the mean tracker time per frame in ms. `settings`:
    TrackerSettings, a callable making a tracker (the baseline), or None (per-frame ids)."""
    people = copy.deepcopy(detections)
    if settings is None:
        return people, 0.0
    tracker = settings() if callable(settings) else PersonTracker(settings)
    start = time.perf_counter()
    out = [tracker.update(frame, index / FPS) for index, frame in enumerate(people)]
    return out, 1000 * (time.perf_counter() - start) / max(len(people), 1)


def configurations(max_age: int) -> dict[str, object]:
    baseline = load_baseline(BASELINE_REF)
    return {
        "no tracker (per-frame index)": None,
        f"main ({BASELINE_REF})": lambda: baseline.PersonTracker(baseline.TrackerSettings(max_age=max_age)),
        DEFAULT_NAME: TrackerSettings(max_age=max_age),
        "iou": TrackerSettings(metric="iou", max_age=max_age),
        "oks, no motion model": TrackerSettings(max_age=max_age, velocity_damping=0.0),
    }


def known_track_table(args: argparse.Namespace, estimator) -> None:
    background = empty_street(assets.demo_data_dir() / "vtest.avi")
    annotations = AnnotationSet.load(args.annotations, args.images)
    sprite_ids = args.sprite_ids or select_sprite_annotations(annotations, 5)
    print(f"people cut out of {args.annotations}: annotation ids {' '.join(map(str, sprite_ids))}")
    walkers = known_walkers(load_sprites(annotations, sprite_ids), args.frames)
    rendered = [render(background, walkers, i) for i in range(args.frames)]
    frames, truth = [r[0] for r in rendered], [r[1] for r in rendered]
    detections, seconds = detect(frames, estimator)
    print(f"\n(a) known tracks: {args.frames} frames, {len(walkers)} people, estimator {seconds:.3f} s/frame")
    print(f"CLEAR-MOT, IoU >= {args.iou}, ground truth under {args.min_visibility:.0%} visible is don't-care\n")
    print("| tracker | GT | TP | FN | FP | IDSW | MOTA | MOTP (IoU) | ids per person | ms/frame |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, settings in configurations(args.max_age).items():
        tracked, ms = track(detections, settings)
        c, ids = clear_mot(truth, tracked, args.iou, args.min_visibility)
        per_person = " ".join(str(len(ids.get(w.gt_id, ()))) for w in walkers)
        print(
            f"| {name} | {c.gt} | {c.tp} | {c.fn} | {c.fp} | {c.idsw} | {c.mota:.3f} | {c.motp:.3f} | "
            f"{per_person} | {ms:.2f} |"
        )
    if args.save_montage:
        save_montage(args.save_montage, frames, track(detections, TrackerSettings(max_age=args.max_age))[0])


def save_montage(path: Path, frames: list[np.ndarray], tracked: list[list[Person]]) -> None:
    """Four frames of the known-track sequence with the tracked people drawn, side by side (2 × 2)."""
    picks = np.linspace(0, len(frames) - 1, 6).astype(int)[1:5]
    tiles = [cv2.resize(draw_people(frames[i], tracked[i]), None, fx=0.5, fy=0.5) for i in picks]
    for tile, index in zip(tiles, picks, strict=True):
        cv2.putText(tile, f"frame {index}", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
    grid = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"\nwrote {path}")


# ----------------------------------------------------------------------------------------------------------
# vtest.avi


def read_frames(video: Path, count: int) -> list[np.ndarray]:
    return read_video_frames(video, range(count))


def track_spans(tracked: list[list[Person]]) -> dict[int, list[tuple[int, np.ndarray]]]:
    """Per track id, its (frame, box) observations in time order."""
    spans: dict[int, list[tuple[int, np.ndarray]]] = {}
    for index, people in enumerate(tracked):
        for person in people:
            spans.setdefault(person.id, []).append((index, np.asarray(person.bbox_xywh, np.float64)))
    return spans


def fragmentations(spans: dict[int, list[tuple[int, np.ndarray]]], num_frames: int, gap: int) -> int:
    """Tracks that end before the last frame with a new track starting near their end soon after."""
    starts = {tid: obs[0] for tid, obs in spans.items()}
    count = 0
    for tid, obs in spans.items():
        end_frame, end_box = obs[-1]
        if end_frame >= num_frames - 1:
            continue
        centre = end_box[:2] + end_box[2:] / 2
        for other, (start_frame, start_box) in starts.items():
            near = np.linalg.norm(start_box[:2] + start_box[2:] / 2 - centre) <= max(end_box[3], 1.0)
            if other != tid and end_frame < start_frame <= end_frame + gap and near:
                count += 1
                break
    return count


def save_track_sheet(path: Path, frames: list[np.ndarray], spans: dict[int, list[tuple[int, np.ndarray]]]) -> None:
    """One row per track: its id and length, then crops of up to 8 of its boxes (frame number above each).

    A row showing two different people is an id switch the tables cannot see (vtest.avi has no ground truth).
    """
    rows = []
    for track_id, observations in sorted(spans.items()):
        picks = np.linspace(0, len(observations) - 1, min(8, len(observations))).astype(int)
        name = np.full((80, 56, 3), 255, np.uint8)
        cv2.putText(name, f"{track_id}:{len(observations)}", (2, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        tiles = [_with_caption(name, "")]
        for frame_index, box in (observations[i] for i in picks):
            x, y, w, h = (int(v) for v in box)
            crop = frames[frame_index][max(y, 0) : y + max(h, 1), max(x, 0) : x + max(w, 1)]
            width = max(round(crop.shape[1] * 80 / max(crop.shape[0], 1)), 1)
            tiles.append(_with_caption(cv2.resize(crop, (width, 80)), str(frame_index)))
        rows.append(np.hstack(tiles))
    width = max(r.shape[1] for r in rows)
    sheet = np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {path}")


def _with_caption(tile: np.ndarray, caption: str) -> np.ndarray:
    """`tile` (80, w, 3) with a white 14 px strip above holding `caption` and a 4 px gap on the right."""
    framed = cv2.copyMakeBorder(np.ascontiguousarray(tile), 14, 2, 0, 4, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    cv2.putText(framed, caption, (1, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
    return framed


def vtest_table(args: argparse.Namespace, estimator) -> None:
    frames = read_frames(assets.demo_data_dir() / "vtest.avi", args.vtest_frames)
    detections, seconds = detect(frames, estimator)
    per_frame = np.mean([len(d) for d in detections])
    print(f"\n(b) vtest.avi: first {len(frames)} frames, {per_frame:.2f} people per frame, {seconds:.3f} s/frame")
    print(f"fragmentation: a track ends and another starts within {args.frag_gap} frames, one box height away\n")
    print("| tracker | tracks | length min / median / mean / max | tracks ≥ 20 frames | fragmentations |")
    print("|---|---|---|---|---|")
    all_spans = {}
    for name, settings in configurations(args.max_age).items():
        if settings is None:
            continue
        all_spans[name] = spans = track_spans(track(detections, settings)[0])
        lengths = np.array([len(obs) for obs in spans.values()])
        frag = fragmentations(spans, len(frames), args.frag_gap)
        stats = f"{lengths.min()} / {np.median(lengths):.0f} / {lengths.mean():.1f} / {lengths.max()}"
        print(f"| {name} | {len(spans)} | {stats} | {(lengths >= 20).sum()} | {frag} |")
    if args.save_track_sheet:
        save_track_sheet(args.save_track_sheet, frames, all_spans[DEFAULT_NAME])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100, help="length of the known-track sequence")
    parser.add_argument("--vtest-frames", type=int, default=200, help="vtest.avi frames to track (0: skip)")
    parser.add_argument("--max-age", type=int, default=TrackerSettings.max_age, help="tracker max_age, frames")
    parser.add_argument("--iou", type=float, default=0.5, help="CLEAR-MOT match threshold (box IoU)")
    parser.add_argument("--min-visibility", type=float, default=0.5, help="less visible ground truth is ignored")
    parser.add_argument("--frag-gap", type=int, default=10, help="frames between a track end and a new start")
    parser.add_argument("--annotations", type=Path, default=DEFAULT_ANNOTATIONS, help="COCO-style keypoint file")
    parser.add_argument("--images", type=Path, help="image folder of the annotation file (default: its folder)")
    parser.add_argument(
        "--sprite-ids", type=int, nargs="+", help="annotation ids of the walkers (default: the 5 tallest whole people)"
    )
    parser.add_argument("--save-montage", type=Path, help="write a 2x2 JPEG of tracked known-track frames")
    parser.add_argument("--save-track-sheet", type=Path, help="write crops of every default vtest.avi track")
    args = parser.parse_args()
    config = PipelineConfig(device="cpu")
    estimator = CachedEstimator(config, default_cache_dir("tracking_known"))

    print(f"estimator: {config.model_name} {config.input_width}x{config.input_height}, device cpu")
    if args.frames > 0:
        known_track_table(args, estimator)
    if args.vtest_frames > 0:
        vtest_table(args, estimator)


if __name__ == "__main__":
    main()
