"""Tracking under fast motion: a panning, zooming virtual camera over real multi-person photos, plus real
people walking through the picture, with exact ground truth, the real default estimator and CLEAR-MOT.

Scene (per speed v, in box heights per frame; fixed seeds):
* World: the annotation file's `--backgrounds` images with the most annotated people, each letterboxed into
  a 640×424 cell of a 2×2 mosaic. Their annotated people are ground truth (a person with fewer than 5
  annotated keypoints, under 40 px tall or `iscrowd` is "don't care").
* Camera: a 640×424 view that glides along an ellipse around the mosaic centre at v × (median annotated
  person height) world pixels per frame, so every background person moves v of its own box height per frame
  when it is as tall as the median (the table prints the measured median), while the zoom breathes
  1 ± 0.1 (period 50 frames).
* Walkers: whole upright people of the same file (cut out with their segmentation polygons) walk across the
  view, independent of the camera, at v of their own height per frame, 0.8-1.2 × the median person height;
  two at a time, a new one (new ground-truth id) entering when one has left. Nearer (lower) walkers are
  drawn over farther ones and over the photos.
A sequence lasts while the camera covers half of its ellipse (10-60 frames), so the view never returns to
people it has left (an id lost then is a re-identification problem, not tracking); sequences (each from its
own seed: start point, zoom phase, walkers) are rendered until at least `--person-frames` ground-truth
person-frames count (>= 50 % visible). Each sequence starts a fresh tracker.

The estimator is the default `PosePipeline` (MoveNet MultiPose, CPU) on every rendered frame; its people
are cached on disk per frame content (~/.cache/pose_ros/bench/tracking_motion), so a rerun with other
tracker settings only costs the tracker. Frames are `--fps` apart in time (default 5: a node running at
5 FPS; the speeds are per processed frame).

ms/frame: the tracker's mean time per frame (not the estimator's), side by side in one process.

CLEAR-MOT (Bernardin & Stiefelhagen 2008), per frame: ground truth and tracker boxes are matched at box IoU
>= 0.5, last frame's correspondences kept first while they still overlap, then Hungarian on IoU. FN: counted
ground truth without a match; FP: tracker boxes without a match; IDSW: a ground-truth person matched to a
different track id than at its previous match; MOTA = 1 - (FN + FP + IDSW) / GT. Ground truth under 50 %
visible (covered, outside the view) or "don't care" is not a miss when undetected and not a false positive
when detected (its id switches still count). "ids" = track ids the tracker issued over the sequence.

The baseline "main" is the tracker module of the repository at `--baseline-ref` (git show), run in the same
process on the same detections.

Run from the repository root:  python -m bench.eval_tracking_motion
(first run 5-15 minutes on 2 shared CPU cores for the estimator, reruns 1-2 minutes)
"""

from __future__ import annotations

import argparse
import copy
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bench.estimator_cache import BASELINE_REF, CachedEstimator, default_cache_dir, load_baseline
from bench.eval_tracking import GroundTruth, MotCounts, clear_mot
from bench.scenes import (
    DEFAULT_ANNOTATIONS,
    AnnotationSet,
    Sprite,
    load_sprites,
    paste,
    person_mask,
    scaled_sprite,
    select_sprite_annotations,
    visible_keypoints,
)
from pose_ros.core.person import Person
from pose_ros.core.pipeline import PipelineConfig
from pose_ros.core.tracking import PersonTracker, TrackerSettings

SPEEDS = (0.02, 0.04, 0.08, 0.16, 0.25)
CELL_WH = (640, 424)
CARE_MIN_KEYPOINTS = 5
CARE_MIN_HEIGHT = 40.0


# ----------------------------------------------------------------------------------------------------------
# World: a mosaic of annotated photos


@dataclass
class WorldPerson:
    """An annotated person of the mosaic: box (4,) xywh and mask (H, W) bool in mosaic pixels."""

    gt_id: int
    bbox_xywh: np.ndarray
    mask: np.ndarray
    care: bool


def build_world(annotations: AnnotationSet, count: int) -> tuple[np.ndarray, list[WorldPerson]]:
    """Mosaic RGB (2 cells high, ceil(count / 2) wide) of the `count` images with most annotated people."""
    grouped = annotations.by_image()
    ranked = sorted(grouped, key=lambda i: (-sum(visible_keypoints(a) > 0 for a in grouped[i]), i))[:count]
    if not ranked:
        raise ValueError("the annotation file has no annotated image")
    cell_w, cell_h = CELL_WH
    columns = (len(ranked) + 1) // 2
    world = np.full((2 * cell_h, columns * cell_w, 3), 114, np.uint8)
    people = []
    for slot, image_id in enumerate(ranked):
        rgb = annotations.image_rgb(image_id)
        scale = min(cell_w / rgb.shape[1], cell_h / rgb.shape[0])
        size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
        x0 = (slot % columns) * cell_w + (cell_w - size[0]) // 2
        y0 = (slot // columns) * cell_h + (cell_h - size[1]) // 2
        world[y0 : y0 + size[1], x0 : x0 + size[0]] = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        for annotation in grouped[image_id]:
            mask = np.zeros(world.shape[:2], bool)
            small = cv2.resize(person_mask(annotation, rgb.shape[:2]).astype(np.uint8), size, cv2.INTER_NEAREST)
            mask[y0 : y0 + size[1], x0 : x0 + size[0]] = small > 0
            x, y, w, h = (float(v) * scale for v in annotation["bbox"])
            box = np.array([x + x0, y + y0, w, h])
            care = (
                visible_keypoints(annotation) >= CARE_MIN_KEYPOINTS
                and h >= CARE_MIN_HEIGHT
                and not annotation.get("iscrowd", 0)
            )
            people.append(WorldPerson(len(people), box, mask, care))
    return world, people


# ----------------------------------------------------------------------------------------------------------
# Camera and walkers


@dataclass
class Walker:
    gt_id: int
    sprite: Sprite
    height: float
    feet: np.ndarray  # (2,) output pixels
    velocity: np.ndarray  # (2,) output pixels per frame


class Scene:
    """Renders frame after frame of one sequence; `next()` -> (image (h, w, 3) RGB, ground truth)."""

    def __init__(self, world, people, sprites, speed: float, seed: int, walkers_at_once: int = 2):
        self.world, self.people, self.sprites, self.speed = world, people, sprites, speed
        self.rng = np.random.default_rng(seed)
        self.frame = 0
        heights = [p.bbox_xywh[3] for p in people if p.care]
        self.median_height = float(np.median(heights)) if heights else CELL_WH[1] / 2
        height, width = world.shape[:2]
        # ellipse of the view centre, leaving room for the widest view (zoom 0.9)
        view_w, view_h = CELL_WH[0] / 0.9, CELL_WH[1] / 0.9
        self.radii = np.array([max((width - view_w) / 2, 1.0), max((height - view_h) / 2, 1.0)])
        self.theta = float(self.rng.uniform(0, 2 * np.pi))
        self.zoom_phase = float(self.rng.uniform(0, 2 * np.pi))
        self.world_labels = np.full(world.shape[:2], -1, np.float32)
        for person in sorted(people, key=lambda p: p.bbox_xywh[1] + p.bbox_xywh[3]):
            self.world_labels[person.mask] = person.gt_id
        self.next_walker_id = 10_000
        self.walkers = [self._new_walker(inside=True) for _ in range(walkers_at_once)]

    def _new_walker(self, inside: bool) -> Walker:
        cell_w, cell_h = CELL_WH
        height = self.median_height * float(self.rng.uniform(0.8, 1.2))
        direction = 1.0 if self.rng.random() < 0.5 else -1.0
        slope = float(self.rng.uniform(-0.15, 0.15))
        velocity = self.speed * height * np.array([direction, slope]) / np.hypot(1.0, slope)
        feet_y = float(self.rng.uniform(0.55, 0.95)) * cell_h + 0.4 * height
        if inside:
            feet_x = float(self.rng.uniform(0.15, 0.85)) * cell_w
        else:
            feet_x = -0.4 * height if direction > 0 else cell_w + 0.4 * height
        sprite = self.sprites[int(self.rng.integers(len(self.sprites)))]
        self.next_walker_id += 1
        return Walker(self.next_walker_id, sprite, height, np.array([feet_x, feet_y]), velocity)

    def perimeter(self) -> float:
        """Length of the camera's ellipse, world pixels (Ramanujan's approximation)."""
        a, b = self.radii
        return float(np.pi * (3 * (a + b) - np.sqrt((3 * a + b) * (a + 3 * b))))

    def _view(self) -> tuple[np.ndarray, float]:
        """(2, 3) affine world -> output and the zoom of the current frame."""
        zoom = 1.0 + 0.1 * np.sin(2 * np.pi * self.frame / 50.0 + self.zoom_phase)
        height, width = self.world.shape[:2]
        centre = np.array([width / 2, height / 2]) + self.radii * np.array([np.cos(self.theta), np.sin(self.theta)])
        top_left = centre - np.array(CELL_WH) / (2 * zoom)
        return np.array([[zoom, 0.0, -zoom * top_left[0]], [0.0, zoom, -zoom * top_left[1]]]), zoom

    def _advance_camera(self) -> None:
        step = self.speed * self.median_height  # world pixels per frame
        tangent = self.radii * np.array([-np.sin(self.theta), np.cos(self.theta)])
        self.theta += step / max(float(np.linalg.norm(tangent)), 1e-6)

    def next(self) -> tuple[np.ndarray, list[GroundTruth]]:
        affine, zoom = self._view()
        size = CELL_WH
        image = cv2.warpAffine(self.world, affine, size, flags=cv2.INTER_LINEAR, borderValue=(114, 114, 114))
        labels = cv2.warpAffine(self.world_labels, affine, size, flags=cv2.INTER_NEAREST, borderValue=-1)
        labels = np.rint(labels).astype(np.int32)
        boxes: dict[int, tuple[np.ndarray, float, bool]] = {}
        for person in self.people:
            x, y, w, h = person.bbox_xywh
            box = np.array([affine[0, 0] * x + affine[0, 2], affine[1, 1] * y + affine[1, 2], w * zoom, h * zoom])
            boxes[person.gt_id] = (box, float(person.mask.sum()) * zoom * zoom, person.care)
        for walker in sorted(self.walkers, key=lambda w: w.feet[1]):
            rgb, mask, _ = scaled_sprite(walker.sprite, walker.height, mirror=walker.velocity[0] < 0)
            x0, y0 = round(walker.feet[0] - rgb.shape[1] / 2), round(walker.feet[1] - rgb.shape[0])
            paste(image, labels, rgb, mask, x0, y0, walker.gt_id)
            box = np.array([x0, y0, rgb.shape[1], rgb.shape[0]], np.float64)
            boxes[walker.gt_id] = (box, float(mask.sum()), True)
        truth = []
        for gt_id, (box, total, care) in boxes.items():
            clipped = _clip_box(box, image.shape)
            if clipped[2] <= 1 or clipped[3] <= 1:
                continue
            visible = float((labels == gt_id).sum()) / max(total, 1.0)
            truth.append(GroundTruth(gt_id, clipped, visible if care else 0.0))
        self._advance()
        return image, truth

    def _advance(self) -> None:
        self.frame += 1
        self._advance_camera()
        cell_w, cell_h = CELL_WH
        for index, walker in enumerate(self.walkers):
            walker.feet = walker.feet + walker.velocity
            half = 0.4 * walker.height
            gone = walker.feet[0] < -half - 1 or walker.feet[0] > cell_w + half + 1
            gone |= walker.feet[1] < 0.3 * cell_h or walker.feet[1] > cell_h + walker.height
            if gone:
                self.walkers[index] = self._new_walker(inside=False)


def _clip_box(box: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
    x1, y1 = min(box[0] + box[2], shape[1]), min(box[1] + box[3], shape[0])
    return np.array([x0, y0, max(x1 - x0, 0.0), max(y1 - y0, 0.0)])


def render_sequences(world, people, sprites, speed, seed, person_frames, min_visibility, max_length=60):
    """Sequences [(frames, ground truth)] until `person_frames` counted ground-truth boxes in all.

    A sequence lasts while the camera covers half its ellipse (10 to `max_length` frames), so the view never
    comes back to people it left: an id lost then would need re-identification, not tracking.
    """
    sequences, counted = [], 0
    while counted < person_frames:
        scene = Scene(world, people, sprites, speed, seed + 1000 * len(sequences))
        length = int(np.clip(round(0.5 * scene.perimeter() / (speed * scene.median_height)), 10, max_length))
        frames, truth = [], []
        for _ in range(length):
            image, gts = scene.next()
            frames.append(image)
            truth.append(gts)
            counted += sum(g.visibility >= min_visibility for g in gts)
        sequences.append((frames, truth))
    return sequences


def measured_speed(truth: list[list[GroundTruth]], min_visibility: float) -> float:
    """Median over counted person-frames of the box-centre shift since the previous frame / box height."""
    speeds = []
    for before, after in itertools.pairwise(truth):
        previous = {g.gt_id: g for g in before if g.visibility >= min_visibility}
        for g in after:
            p = previous.get(g.gt_id)
            if p is None or g.visibility < min_visibility:
                continue
            shift = (g.bbox_xywh[:2] + g.bbox_xywh[2:] / 2) - (p.bbox_xywh[:2] + p.bbox_xywh[2:] / 2)
            speeds.append(np.linalg.norm(shift) / max(g.bbox_xywh[3], 1.0))
    return float(np.median(speeds)) if speeds else 0.0


# ----------------------------------------------------------------------------------------------------------
# Trackers


def trackers(baseline) -> dict[str, object]:
    """Name -> factory of a fresh tracker."""
    out = {}
    if baseline is not None:
        out[f"main ({BASELINE_REF})"] = lambda: baseline.PersonTracker(baseline.TrackerSettings())
    out["default (this branch)"] = lambda: PersonTracker(TrackerSettings())
    for name, settings in ablations().items():
        out[name] = lambda s=settings: PersonTracker(s)
    return out


def ablations() -> dict[str, TrackerSettings]:
    """The default with one remedy switched off at a time, and both off (main's method)."""
    return {
        "no camera compensation": TrackerSettings(camera_compensation=False),
        "no second pass": TrackerSettings(second_pass_distance=0.0),
        "neither": TrackerSettings(camera_compensation=False, second_pass_distance=0.0),
    }


def run_tracker(factory, detections: list[list[Person]], fps: float) -> tuple[list[list[Person]], int, float]:
    """Tracked people per frame (a fresh tracker, on copies), the number of ids it issued, its seconds."""
    tracker = factory()
    people = copy.deepcopy(detections)
    start = time.perf_counter()
    out = [tracker.update(frame, index / fps) for index, frame in enumerate(people)]
    return out, tracker.num_ids_issued, time.perf_counter() - start


def score_sequences(factory, sequences, detections, args) -> tuple[MotCounts, int, float]:
    """CLEAR-MOT counts summed over the sequences (a fresh tracker each), the ids issued in all, and the
    tracker's mean time per frame in ms."""
    total, ids, seconds = MotCounts(), 0, 0.0
    for (_, truth), found in zip(sequences, detections, strict=True):
        tracked, issued, spent = run_tracker(factory, found, args.fps)
        seconds += spent
        counts, _ = clear_mot(truth, tracked, args.iou, args.min_visibility)
        for name in ("gt", "tp", "fn", "fp", "idsw", "iou_sum"):
            setattr(total, name, getattr(total, name) + getattr(counts, name))
        ids += issued
    return total, ids, 1000 * seconds / max(sum(len(found) for found in detections), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", type=Path, default=DEFAULT_ANNOTATIONS, help="COCO-style keypoint file")
    parser.add_argument("--images", type=Path, help="image folder of the annotation file (default: its folder)")
    parser.add_argument("--speeds", type=float, nargs="+", default=SPEEDS, help="box heights per frame")
    parser.add_argument("--person-frames", type=int, default=500, help="counted ground truth per speed")
    parser.add_argument("--backgrounds", type=int, default=4, help="photos in the mosaic")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--fps", type=float, default=5.0, help="time between rendered frames = 1 / fps")
    parser.add_argument("--iou", type=float, default=0.5, help="CLEAR-MOT match threshold (box IoU)")
    parser.add_argument("--min-visibility", type=float, default=0.5, help="less visible ground truth is ignored")
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="git ref of the baseline tracker ('' : none)")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help="estimator output cache")
    parser.add_argument("--save-frames", type=Path, help="write a JPEG strip of frames of the fastest sequence")
    args = parser.parse_args()

    annotations = AnnotationSet.load(args.annotations, args.images)
    world, people = build_world(annotations, args.backgrounds)
    sprite_ids = select_sprite_annotations(annotations, 5)
    sprites = load_sprites(annotations, sprite_ids)
    config = PipelineConfig(device="cpu")
    estimator = CachedEstimator(config, args.cache_dir)
    baseline = load_baseline(args.baseline_ref) if args.baseline_ref else None
    factories = trackers(baseline)
    print(f"annotations {args.annotations}: mosaic {world.shape[1]}x{world.shape[0]} of {args.backgrounds} photos, "
          f"{sum(p.care for p in people)} annotated people (+{sum(not p.care for p in people)} don't care), "
          f"walkers cut from annotation ids {' '.join(map(str, sprite_ids))}")  # fmt: skip
    print(f"estimator: {config.model_name} {config.input_width}x{config.input_height} cpu; {args.fps:g} frames/s; "
          f"CLEAR-MOT at IoU >= {args.iou}, under {args.min_visibility:.0%} visible is don't care\n")  # fmt: skip
    print("| speed (box h/frame) | measured | seqs | frames | GT | tracker | FN | FP | IDSW | IDSW/100 | MOTA | ids "
          "| ms/frame |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for index, speed in enumerate(args.speeds):
        seed = args.seed + (SPEEDS.index(speed) if speed in SPEEDS else round(1000 * speed))  # same frames alone
        sequences = render_sequences(world, people, sprites, speed, seed, args.person_frames, args.min_visibility)
        detections = [[estimator(frame) for frame in frames] for frames, _ in sequences]
        moving = np.median([measured_speed(truth, args.min_visibility) for _, truth in sequences])
        num_frames = sum(len(frames) for frames, _ in sequences)
        for name, factory in factories.items():
            c, ids, ms = score_sequences(factory, sequences, detections, args)
            print(f"| {speed:g} | {moving:.3f} | {len(sequences)} | {num_frames} | {c.gt} | {name} | {c.fn} | {c.fp} | "
                  f"{c.idsw} | {100 * c.idsw / max(c.gt, 1):.2f} | {c.mota:.3f} | {ids} | {ms:.1f} |",
                  flush=True)  # fmt: skip
        if args.save_frames and index == len(args.speeds) - 1:
            frames = sequences[0][0]
            picks = np.linspace(0, len(frames) - 1, 4).astype(int)
            strip = np.hstack([cv2.resize(frames[i], None, fx=0.5, fy=0.5) for i in picks])
            cv2.imwrite(str(args.save_frames), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    print(f"\nestimator: {estimator.misses} frames run ({estimator.seconds / max(estimator.misses, 1):.3f} s/frame), "
          f"{estimator.hits} from the cache {args.cache_dir}")  # fmt: skip


if __name__ == "__main__":
    main()
