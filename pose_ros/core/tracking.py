"""Stable person ids across frames: Hungarian assignment against motion-predicted tracks.

Each frame, every live track is moved to the frame's time with a damped constant-velocity model: its
keypoints and box translate together; the velocity is measured from the median shift of the confident
keypoints between matched detections, smoothed, and clipped to `max_speed`. A similarity between every
detection and every predicted track — OKS over the keypoints both are confident about, or box IoU — becomes
a cost (1 − similarity). The OKS scale s² is the predicted box area times (1 + frames the track has been
missed): a coasting prediction grows less certain, so its tolerance grows. The costs are solved with the
Hungarian method (`scipy.optimize.linear_sum_assignment`) in a matching cascade — tracks seen in the last
frame first, then those missed once, and so on — and pairs below `match_threshold` are never matched.

Fast motion (issue 17: at 0.16 box heights per frame a new track, which has no velocity yet, fails the OKS
gate on every frame): with `camera_compensation`, the image shift shared by most tracks seen last frame (a
panning camera) is voted from the detections, and every track is also compared at its last state moved by
that shift (the better similarity counts); with `second_pass_distance` > 0, detections and tracks seen in the
last frame left over by the OKS/IoU pass are matched by the median keypoint shift from the prediction, in box
heights, gated.

Matched tracks take the detection's keypoints; unmatched detections start new tracks; unmatched tracks
coast on their prediction (velocity damped each missed frame) and are dropped after `max_age` consecutive
misses. Track ids count up from 0 and are never reused in the life of a `PersonTracker` (not even after
`reset()`), so downstream consumers (marker ns/id, colours) never confuse two people.

Any keypoint layout works: OKS constants σ come from the COCO ones by keypoint name
(`layout_oks_sigmas`); a detection is only matched to a track of the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from pose_ros.core.boxes import box_iou_xywh
from pose_ros.core.metrics import COCO_KEYPOINT_SIGMAS
from pose_ros.core.person import Person
from pose_ros.core.skeletons import COCO17, Layout, get_layout

METRICS = ("oks", "iou")
_GATED_COST = 1e6  # cost of a pair that may not be matched

# COCO-17 keypoint whose σ a keypoint of another layout borrows, by a word in its name (first hit wins).
_SIGMA_BY_NAME_PART = (
    ("neck", "left_shoulder"), ("thorax", "left_shoulder"), ("collar", "left_shoulder"),
    ("pelvis", "left_hip"), ("spine", "left_hip"), ("head", "left_ear"), ("mouth", "nose"),
    ("eye", "left_eye"), ("ear", "left_ear"), ("pinky", "left_wrist"), ("index", "left_wrist"),
    ("thumb", "left_wrist"), ("hand", "left_wrist"), ("heel", "left_ankle"), ("foot", "left_ankle"),
)


def layout_oks_sigmas(layout: Layout) -> np.ndarray:
    """Per-keypoint OKS constants σ (K,) for `layout`, from the COCO keypoint challenge's constants.

    A keypoint named like a COCO-17 one takes its σ; others borrow the σ of the closest COCO body part by
    name (neck/thorax → shoulder, pelvis/spine → hip, hand/finger → wrist, heel/foot → ankle, head → ear);
    any remaining keypoint gets the mean COCO σ.
    """
    coco = dict(zip(COCO17.keypoints, COCO_KEYPOINT_SIGMAS, strict=True))
    sigmas = []
    for name in layout.keypoints:
        if name in coco:
            sigmas.append(coco[name])
            continue
        borrowed = next((coco[part] for word, part in _SIGMA_BY_NAME_PART if word in name), None)
        sigmas.append(float(np.mean(COCO_KEYPOINT_SIGMAS)) if borrowed is None else borrowed)
    return np.asarray(sigmas, np.float64)


@dataclass(frozen=True)
class TrackerSettings:
    """Tracker parameters.

    Attributes:
        metric: "oks" (keypoint similarity, robust when boxes overlap) or "iou" (box overlap).
        match_threshold: minimum similarity in (0, 1] (OKS or IoU) for a detection to continue a track.
        max_age: a track survives this many consecutive frames without a match, then it is dropped.
        min_hits: matches a new track needs before it is confirmed and reported (1: report at once).
            An unconfirmed track that misses a frame is dropped.
        keypoint_threshold: keypoints with a confidence above this take part in OKS (both sides).
        velocity_smoothing: weight in (0, 1] of the newest velocity measurement (exponential smoothing).
        velocity_damping: factor in [0, 1] applied to a track's velocity for each frame it is missed.
        max_speed: speed limit of the motion model in box heights per second (a sprinting person covers about
            3); a jump measured when the detector merges or splits people is clipped to it.
        camera_compensation: estimate each frame one image shift common to most tracks (a panning camera) from
            the detections, and also compare every detection with the tracks' predictions moved by it.
        second_pass_distance: a second association pass for the tracks and detections left over by the OKS/IoU
            pass matches by distance: the median keypoint (or box-centre) shift from the prediction, in
            predicted box heights, at most this (0: no second pass); only tracks seen in the last frame take
            part and the box heights must agree within a factor 1.5.
    """

    metric: str = "oks"
    match_threshold: float = 0.3
    max_age: int = 15
    min_hits: int = 1
    keypoint_threshold: float = 0.2
    velocity_smoothing: float = 0.5
    velocity_damping: float = 0.9
    max_speed: float = 3.0
    camera_compensation: bool = True
    second_pass_distance: float = 0.5

    def validate(self) -> None:
        """Raise ValueError with a reason when a field has an unusable value."""
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if not 0.0 < self.match_threshold <= 1.0:
            raise ValueError(f"match_threshold must be in (0, 1], got {self.match_threshold}")
        if self.max_age < 0:
            raise ValueError(f"max_age must be >= 0 frames, got {self.max_age}")
        if self.min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, got {self.min_hits}")
        if not 0.0 <= self.keypoint_threshold < 1.0:
            raise ValueError(f"keypoint_threshold must be in [0, 1), got {self.keypoint_threshold}")
        if not 0.0 < self.velocity_smoothing <= 1.0:
            raise ValueError(f"velocity_smoothing must be in (0, 1], got {self.velocity_smoothing}")
        if not 0.0 <= self.velocity_damping <= 1.0:
            raise ValueError(f"velocity_damping must be in [0, 1], got {self.velocity_damping}")
        if self.max_speed < 0:
            raise ValueError(f"max_speed must be >= 0 box heights per second, got {self.max_speed}")
        if not 0.0 <= self.second_pass_distance <= 10.0:
            raise ValueError(f"second_pass_distance must be in [0, 10] box heights, got {self.second_pass_distance}")


@dataclass
class Track:
    """One tracked person: its latest state (possibly coasted forward) and bookkeeping.

    Attributes:
        id: public track id, or -1 while the track is not confirmed.
        layout: keypoint layout name of the person.
        keypoints_xy: (K, 2) float64 pixels at `timestamp_s`; NaN when unknown.
        confidences: (K,) float64 of the last matched detection.
        bbox_xywh: (4,) float64 pixels at `timestamp_s`.
        velocity: (2,) float64 pixels per second of the person (keypoints and box move together).
        timestamp_s: time of the state, seconds.
        measured_xy: (K, 2) keypoints of the last matched detection, pixels.
        measured_box: (4,) box of the last matched detection, pixels.
        measured_s: time of the last matched detection, seconds.
        hits: number of matched detections.
        misses: consecutive frames without a match.
    """

    id: int
    layout: str
    keypoints_xy: np.ndarray
    confidences: np.ndarray
    bbox_xywh: np.ndarray
    timestamp_s: float
    measured_xy: np.ndarray
    measured_box: np.ndarray
    measured_s: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    hits: int = 1
    misses: int = 0

    def shift(self, timestamp_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (K, 2) and box (4,) moved by the velocity to `timestamp_s` (no state change)."""
        offset = self.velocity * max(timestamp_s - self.timestamp_s, 0.0)
        return self.keypoints_xy + offset, self.bbox_xywh + np.array([offset[0], offset[1], 0.0, 0.0])


def _box_centre(bbox_xywh: np.ndarray) -> np.ndarray:
    """Centre (2, ...) of boxes (4, ...) x, y, w, h."""
    return np.array([bbox_xywh[0] + bbox_xywh[2] / 2.0, bbox_xywh[1] + bbox_xywh[3] / 2.0], np.float64)


def _masked_median(values: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median over axis 1 of values (D, K, 2) whose unused entries are NaN, with `count` (D,) >= 1 used
    entries per row -> (D, 2) (np.nanmedian, without its per-row Python loop)."""
    ordered = np.sort(values, axis=1)  # NaN sorts last
    low = ((count - 1) // 2)[:, None, None]
    high = (count // 2)[:, None, None]
    pick = np.take_along_axis
    return (pick(ordered, np.broadcast_to(low, (len(count), 1, 2)), 1)[:, 0]
            + pick(ordered, np.broadcast_to(high, (len(count), 1, 2)), 1)[:, 0]) / 2  # fmt: skip


@dataclass
class _Detections:
    """The detections of one layout, stacked: rows (D,) their indices in the frame, keypoints (D, K, 2),
    confidences (D, K), finite (D, K) keypoints known, boxes (D, 4), all float64."""

    layout: str
    rows: np.ndarray
    keypoints: np.ndarray
    confidences: np.ndarray
    finite: np.ndarray
    boxes: np.ndarray

    @classmethod
    def by_layout(cls, people: list[Person]) -> dict[str, _Detections]:
        groups: dict[str, list[int]] = {}
        for index, person in enumerate(people):
            groups.setdefault(person.layout, []).append(index)
        out = {}
        for layout, rows in groups.items():
            keypoints = np.stack([np.asarray(people[r].keypoints_xy, np.float64) for r in rows])
            out[layout] = cls(
                layout,
                np.array(rows),
                keypoints,
                np.stack([np.asarray(people[r].confidences, np.float64) for r in rows]),
                np.isfinite(keypoints).all(axis=2),
                np.stack([np.asarray(people[r].bbox_xywh, np.float64) for r in rows]),
            )
        return out


class PersonTracker:
    """Gives people stable track ids across frames (see the module docstring for the method).

    Use one tracker per image stream: `update(people, timestamp_s)` once per frame, in time order.
    """

    def __init__(self, settings: TrackerSettings | None = None) -> None:
        self.settings = settings or TrackerSettings()
        self.settings.validate()
        self._tracks: list[Track] = []
        self._next_id = 0
        self._sigmas: dict[str, np.ndarray] = {}

    @property
    def tracks(self) -> list[Track]:
        """Live tracks (confirmed and tentative), oldest first."""
        return list(self._tracks)

    @property
    def num_ids_issued(self) -> int:
        """How many track ids this tracker has handed out (ids are 0 .. num_ids_issued − 1)."""
        return self._next_id

    def reset(self) -> None:
        """Forget all tracks (e.g. after a time jump). Ids keep counting up: no id is ever reused."""
        self._tracks = []

    def update(self, people: list[Person], timestamp_s: float) -> list[Person]:
        """Assign track ids to this frame's `people` (modified in place) and return the reported ones.

        Args:
            people: detections of one frame, any layout; `bbox_xywh` and keypoints in pixels.
            timestamp_s: the frame's time in seconds (e.g. the image header stamp). Time going backwards is
                treated as no time passing; call `reset()` on a jump.

        Returns:
            The people of confirmed tracks, in input order, with `id` = track id and `tracked` = True.
            With `min_hits` > 1, people of tentative tracks are left out.
        """
        predictions = [track.shift(timestamp_s) for track in self._tracks]
        camera = self._camera_shift(people) if self.settings.camera_compensation else None
        hypotheses = [predictions]
        if camera is not None:
            hypotheses.append([(t.keypoints_xy + camera, t.bbox_xywh + np.r_[camera, 0.0, 0.0]) for t in self._tracks])
        matches = self._assign(self._similarities(people, hypotheses))
        if self.settings.second_pass_distance > 0:
            matches += self._second_pass(people, hypotheses, matches)
        matched_tracks = {t for _, t in matches}
        for track_index, track in enumerate(self._tracks):
            if track_index not in matched_tracks:
                self._coast(track, timestamp_s)
        owners: dict[int, Track] = {}
        for det_index, track_index in matches:
            owners[det_index] = self._tracks[track_index]
            self._correct(self._tracks[track_index], people[det_index], timestamp_s)
        for det_index, person in enumerate(people):
            if det_index not in owners:
                owners[det_index] = self._start(person, timestamp_s)
        self._tracks = [t for t in self._tracks if self._alive(t)]
        return self._report(people, owners)

    # -- matching --------------------------------------------------------------------------------------

    def _similarities(self, people: list[Person], hypotheses: list[list[tuple]]) -> np.ndarray:
        """(D, T) similarity of each detection to each track: the best over the predictions in `hypotheses`
        (per hypothesis, one (keypoints (K, 2), box (4,)) per track); 0 across layouts."""
        out = np.zeros((len(people), len(self._tracks)))
        groups = _Detections.by_layout(people)
        for t, track in enumerate(self._tracks):
            group = groups.get(track.layout)
            if group is None:
                continue
            for keypoints, box in (hypothesis[t] for hypothesis in hypotheses):
                if self.settings.metric == "iou":
                    value = box_iou_xywh(group.boxes, box)[:, 0]
                else:
                    area = box[2] * box[3] * (1 + track.misses)
                    value = self._oks(group, keypoints, track.confidences, area)
                out[group.rows, t] = np.maximum(out[group.rows, t], value)
        return out

    def _shared(self, group: _Detections, keypoints: np.ndarray, confidences: np.ndarray) -> np.ndarray:
        """(D, K) keypoints a group's detections and a track state are both confident about (and finite)."""
        threshold = self.settings.keypoint_threshold
        track_ok = (confidences > threshold) & np.isfinite(keypoints).all(axis=1)
        return (group.confidences > threshold) & group.finite & track_ok[None]

    def _offsets(self, group: _Detections, keypoints: np.ndarray, confidences: np.ndarray, box: np.ndarray):
        """(D, 2) shift in pixels from a track state (keypoints (K, 2), confidences (K,), box (4,)) to each
        detection of a group: the median shift of the keypoints both are confident about, the box-centre shift
        below 3 of them."""
        shared = self._shared(group, keypoints, confidences)
        shift = np.where(shared[..., None], group.keypoints - keypoints[None], np.nan)
        out = _box_centre(group.boxes.T).T - _box_centre(box)
        count = shared.sum(axis=1)
        enough = count >= 3
        if enough.any():
            out[enough] = _masked_median(shift[enough], count[enough])
        return out

    def _camera_shift(self, people: list[Person]) -> np.ndarray | None:
        """Image shift (2,) pixels since the last frame common to most tracks seen then, or None.

        Every (detection, track) pair votes with its offset from the track's last state; a vote's support is
        the number of tracks with a detection within 0.1 of their box height of that offset. The best-supported
        offset (at least 2 tracks, ties to the smaller shift) is refined to the median of its supporters.
        """
        seen = [t for t in self._tracks if t.misses == 0]
        if len(seen) < 2 or len(people) < 2:
            return None
        offsets = np.full((len(people), len(seen), 2), np.nan)
        groups = _Detections.by_layout(people)
        for t, track in enumerate(seen):
            group = groups.get(track.layout)
            if group is not None:
                offsets[group.rows, t] = self._offsets(group, track.keypoints_xy, track.confidences, track.bbox_xywh)
        heights = np.array([max(t.bbox_xywh[3], 1.0) for t in seen])
        candidates = offsets.reshape(-1, 2)
        candidates = candidates[np.isfinite(candidates).all(axis=1)]
        if len(candidates) == 0:
            return None
        # (C, D, T) distance of every pair's offset to every candidate, in the track's box heights
        distance = np.linalg.norm(offsets[None] - candidates[:, None, None], axis=-1) / heights[None, None]
        nearest = np.nan_to_num(distance, nan=np.inf).min(axis=1)  # (C, T)
        support = (nearest <= 0.1).sum(axis=1)
        order = np.lexsort((np.linalg.norm(candidates, axis=1), -support))
        best = order[0]
        if support[best] < 2:
            return None
        supporters = nearest[best] <= 0.1
        closest = np.nan_to_num(distance[best], nan=np.inf).argmin(axis=0)  # (T,) detection nearest per track
        return np.median(offsets[closest[supporters], np.flatnonzero(supporters)], axis=0)

    def _oks(self, group: _Detections, keypoints: np.ndarray, confidences: np.ndarray, area: float) -> np.ndarray:
        """(D,) OKS between a group's detections and a predicted track over the keypoints both are confident
        about (COCO's formula, `pose_ros.core.metrics.oks`, per pair); `area` is the scale s² (pixels²); 0
        where no keypoint is shared."""
        shared = self._shared(group, keypoints, confidences)
        if area <= 0:
            return np.zeros(len(group.rows))
        variances = (self._layout_sigmas(group.layout) * 2) ** 2
        squared = np.nan_to_num(((group.keypoints - keypoints[None]) ** 2).sum(axis=-1), nan=0.0)
        similarity = np.exp(-squared / variances / (area + np.spacing(1)) / 2)
        count = shared.sum(axis=1)
        return np.where(count > 0, (similarity * shared).sum(axis=1) / np.maximum(count, 1), 0.0)

    def _layout_sigmas(self, layout_name: str) -> np.ndarray:
        if layout_name not in self._sigmas:
            self._sigmas[layout_name] = layout_oks_sigmas(get_layout(layout_name))
        return self._sigmas[layout_name]

    def _assign(self, similarity: np.ndarray) -> list[tuple[int, int]]:
        """Matching cascade: tracks missed for fewer frames choose first, each level by Hungarian assignment.

        Without it, a coasting track (whose OKS tolerance has grown) could take the detection of a track
        seen in the last frame when the two overlap. Pairs below the threshold are never matched.
        """
        matches: list[tuple[int, int]] = []
        free = np.ones(similarity.shape[0], bool)
        for misses in sorted({track.misses for track in self._tracks}):
            columns = np.array([t for t, track in enumerate(self._tracks) if track.misses == misses])
            rows = np.flatnonzero(free)
            if rows.size == 0:
                break
            block = similarity[np.ix_(rows, columns)]
            allowed = block >= self.settings.match_threshold
            picked_rows, picked_cols = linear_sum_assignment(np.where(allowed, 1.0 - block, _GATED_COST))
            for r, c in zip(picked_rows, picked_cols, strict=True):
                if allowed[r, c]:
                    matches.append((int(rows[r]), int(columns[c])))
                    free[rows[r]] = False
        return matches

    def _coasting(self) -> set[int]:
        """Indices of the tracks missed in the last frame (left to the OKS pass: its tolerance grows with the
        misses; a distance gate would let a track whose person is hidden take a passer-by)."""
        return {t for t, track in enumerate(self._tracks) if track.misses > 0}

    def _second_pass(
        self, people: list[Person], hypotheses: list[list[tuple]], matches: list[tuple[int, int]]
    ) -> list[tuple[int, int]]:
        """Match leftover detections and tracks by distance (see `TrackerSettings.second_pass_distance`).

        Only tracks seen in the last frame take part. Cost = the smallest shift from a track's predictions to
        the detection in predicted box heights; pairs beyond the gate `second_pass_distance`, of another
        layout, or whose box heights differ by more than a factor 1.5 are never matched.
        """
        free_d = sorted(set(range(len(people))) - {d for d, _ in matches})
        free_t = sorted(set(range(len(self._tracks))) - {t for _, t in matches} - self._coasting())
        if not free_d or not free_t:
            return []
        cost = np.full((len(free_d), len(free_t)), _GATED_COST)
        groups = _Detections.by_layout([people[d] for d in free_d])
        for j, t in enumerate(free_t):
            track = self._tracks[t]
            group = groups.get(track.layout)
            if group is None:
                continue
            gate = self.settings.second_pass_distance
            for keypoints, box in (hypothesis[t] for hypothesis in hypotheses):
                height = max(box[3], 1.0)
                ratio = group.boxes[:, 3] / height
                distance = np.linalg.norm(self._offsets(group, keypoints, track.confidences, box), axis=1) / height
                allowed = (distance <= gate) & (ratio >= 1 / 1.5) & (ratio <= 1.5)
                cost[group.rows, j] = np.where(allowed, np.minimum(cost[group.rows, j], distance), cost[group.rows, j])
        rows, cols = linear_sum_assignment(cost)
        return [(free_d[r], free_t[c]) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _GATED_COST]

    # -- track life ------------------------------------------------------------------------------------

    def _coast(self, track: Track, timestamp_s: float) -> None:
        """Move an unmatched track to `timestamp_s` on its prediction and damp its velocity."""
        track.keypoints_xy, track.bbox_xywh = track.shift(timestamp_s)
        track.timestamp_s = max(timestamp_s, track.timestamp_s)
        track.velocity = track.velocity * self.settings.velocity_damping
        track.misses += 1

    def _correct(self, track: Track, person: Person, timestamp_s: float) -> None:
        """Take the matched detection's state and update the velocity from the measured displacement."""
        box = np.asarray(person.bbox_xywh, np.float64).copy()
        keypoints = np.asarray(person.keypoints_xy, np.float64).copy()
        confidences = np.asarray(person.confidences, np.float64).copy()
        elapsed = timestamp_s - track.measured_s
        if elapsed > 0:
            shift = self._displacement(track, keypoints, confidences, box)
            measured = self._clip_speed(shift / elapsed, box[3])
            alpha = self.settings.velocity_smoothing if track.hits > 1 else 1.0
            track.velocity = alpha * measured + (1.0 - alpha) * track.velocity
        track.keypoints_xy, track.confidences, track.bbox_xywh = keypoints, confidences, box
        track.timestamp_s = track.measured_s = max(timestamp_s, track.measured_s)
        track.measured_xy, track.measured_box = keypoints, box
        track.hits += 1
        track.misses = 0
        if track.id < 0 and track.hits >= self.settings.min_hits:
            track.id = self._issue_id()

    def _displacement(
        self, track: Track, keypoints: np.ndarray, confidences: np.ndarray, box: np.ndarray
    ) -> np.ndarray:
        """Shift (2,) pixels of the person since the track's last detection.

        The median shift of the keypoints both detections are confident about (robust to a limb moving or
        the box changing shape), or the box-centre shift when fewer than 3 keypoints are shared.
        """
        threshold = self.settings.keypoint_threshold
        shared = (confidences > threshold) & (track.confidences > threshold)
        shift = keypoints - track.measured_xy
        shared &= np.isfinite(shift).all(axis=1)
        if shared.sum() >= 3:
            return np.median(shift[shared], axis=0)
        return _box_centre(box) - _box_centre(track.measured_box)

    def _clip_speed(self, velocity: np.ndarray, box_height: float) -> np.ndarray:
        """`velocity` (2,) px/s scaled down to at most `max_speed` box heights per second."""
        limit = self.settings.max_speed * max(box_height, 1.0)
        speed = float(np.linalg.norm(velocity))
        return velocity * (limit / speed) if speed > limit else velocity

    def _start(self, person: Person, timestamp_s: float) -> Track:
        box = np.asarray(person.bbox_xywh, np.float64).copy()
        track = Track(
            id=-1,
            layout=person.layout,
            keypoints_xy=np.asarray(person.keypoints_xy, np.float64).copy(),
            confidences=np.asarray(person.confidences, np.float64).copy(),
            bbox_xywh=box,
            timestamp_s=timestamp_s,
            measured_xy=np.asarray(person.keypoints_xy, np.float64).copy(),
            measured_box=box,
            measured_s=timestamp_s,
        )
        if self.settings.min_hits <= 1:
            track.id = self._issue_id()
        self._tracks.append(track)
        return track

    def _alive(self, track: Track) -> bool:
        if track.id < 0:
            return track.misses == 0
        return track.misses <= self.settings.max_age

    def _issue_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    @staticmethod
    def _report(people: list[Person], owners: dict[int, Track]) -> list[Person]:
        reported = []
        for det_index, person in enumerate(people):
            track = owners[det_index]
            if track.id >= 0:
                person.id = track.id
                person.tracked = True
                reported.append(person)
        return reported
