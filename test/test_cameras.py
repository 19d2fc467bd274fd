"""Several cameras in one process: the model cache, shared models (2D networks, Anny's body) and two cameras over
real DDS (vtest.avi on one, a folder of still images on the other) started by the embedded launcher."""

from __future__ import annotations

import gc
import shutil
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from pose_ros.core import pipeline as pipeline_module
from pose_ros.core.model_cache import ModelCache, estimator_factory
from pose_ros.core.pipeline import PipelineConfig, PosePipeline
from pose_ros.msg import PersonArray
from pose_ros.ros.launcher import LaunchArguments, ros_arguments, start_nodes

REPO = Path(__file__).resolve().parents[1]
CONFIG_FILE = REPO / "config" / "pose.yaml"
CPU = PipelineConfig(device="cpu")


# ----- the cache ----------------------------------------------------------------------------------------------------


class Model:
    """A stand-in model object for the cache's own behaviour (the real models are tested below)."""

    def __init__(self, name: str) -> None:
        self.name = name


def test_one_build_per_key_and_the_same_object_for_every_caller() -> None:
    cache, builds = ModelCache(), []

    def build(name: str):
        def make() -> Model:
            builds.append(name)
            time.sleep(0.05)  # callers arriving meanwhile wait for this build, they do not start their own
            return Model(name)

        return make

    results: list[Model] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("a", build("a")))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert builds == ["a"] and len({id(m) for m in results}) == 1
    assert cache.get("b", build("b")) is not results[0] and builds == ["a", "b"]
    assert (cache.stats.builds, cache.stats.hits) == (2, 5)


def test_a_key_that_loads_never_stalls_another_key() -> None:
    """While one camera loads a model (held here), another camera gets an already loaded model at once."""
    cache = ModelCache()
    loaded = cache.get("bottom_up", lambda: Model("bottom_up"))
    loading, release = threading.Event(), threading.Event()

    def slow() -> Model:
        loading.set()
        assert release.wait(30)
        return Model("top_down")

    held: list[Model] = []
    loader = threading.Thread(target=lambda: held.append(cache.get("top_down", slow)))
    loader.start()
    assert loading.wait(10)
    started = time.monotonic()
    assert cache.get("bottom_up", lambda: Model("never built")) is loaded
    other = cache.get("openpose", lambda: Model("openpose"))  # a third key builds while the second one loads
    assert other.name == "openpose" and time.monotonic() - started < 1.0
    release.set()
    loader.join(10)
    assert cache.loaded()["top_down"] is held[0]


def test_failed_build_is_not_stored_and_unused_models_are_freed() -> None:
    cache = ModelCache()

    def broken() -> Model:
        raise FileNotFoundError("weights.bin is absent")

    with pytest.raises(FileNotFoundError, match="is absent"):
        cache.get("x", broken)
    assert cache.get("x", lambda: Model("x")).name == "x", "a failed build leaves nothing behind"
    held = cache.get("y", lambda: Model("y"))
    gc.collect()
    assert set(cache.loaded()) == {"y"}, "x was held by nobody: freed"
    del held
    gc.collect()
    assert cache.loaded() == {} and cache.get("y", lambda: Model("y2")).name == "y2"


# ----- real models shared ---------------------------------------------------------------------------------------------


def coco_image(shared_data: Path) -> np.ndarray:
    path = sorted((shared_data / "coco-sample").glob("*.jpg"))[0]
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_pipelines_share_each_network_and_keep_their_own_thresholds(human_models, shared_data, vtest_frames) -> None:
    cache = ModelCache()
    front, back = PosePipeline(estimator_factory(cache)), PosePipeline(estimator_factory(cache))
    strict = PipelineConfig(device="cpu", score_threshold=0.5, max_people=2)
    assert front.estimator(CPU) is back.estimator(strict), "thresholds do not change the network: one copy"
    top_down = PipelineConfig(device="cpu", mode="top_down")
    assert front.estimator(top_down) is back.estimator(top_down)
    assert cache.stats.builds == 2
    private = PosePipeline()  # what a camera with its own models finds: the same people
    for image in (vtest_frames[0], coco_image(shared_data)):
        for config in (CPU, strict, top_down):
            ours, theirs = front(config, image), private(config, image)
            assert [p.score for p in ours] == pytest.approx([p.score for p in theirs], abs=1e-5)
            for a, b in zip(ours, theirs, strict=True):
                np.testing.assert_allclose(a.keypoints_xy, b.keypoints_xy, atol=1e-3)
    assert len(back(strict, vtest_frames[0])) <= 2 < len(front(CPU, vtest_frames[0]))


def test_two_threads_on_one_shared_network_get_what_one_thread_gets(human_models, vtest_frames) -> None:
    """Two cameras' frame threads call the same estimator at once: each result is the single-threaded one."""
    cache = ModelCache()
    pipelines = [PosePipeline(estimator_factory(cache)) for _ in range(2)]
    expected = [[p.keypoints_xy for p in pipelines[0](CPU, frame)] for frame in vtest_frames]
    failures: list[str] = []

    def camera(pipeline: PosePipeline, order: list[int]) -> None:
        for _ in range(3):
            for index in order:
                got = [p.keypoints_xy for p in pipeline(CPU, vtest_frames[index])]
                if len(got) != len(expected[index]) or any(
                    not np.allclose(g, e, atol=1e-3) for g, e in zip(got, expected[index], strict=True)
                ):
                    failures.append(f"frame {index}")

    threads = [
        threading.Thread(target=camera, args=(pipelines[0], [0, 1, 2])),
        threading.Thread(target=camera, args=(pipelines[1], [2, 1, 0])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures and cache.stats.builds == 1


def test_mesh_stages_share_the_body_model_not_the_fitter() -> None:
    """Two Anny stages from one cache: one body model, two fitters (warm starts stay per camera)."""
    from pose_ros.core.body.anny_body import anny_cache_ready
    from pose_ros.core.meshing import MeshConfig, create_mesh_stage
    from pose_ros.core.meshing.stages import warm_up

    if not anny_cache_ready():
        pytest.skip("Anny's model data is not built (scripts/setup.sh)")
    cache = ModelCache()
    config = MeshConfig(mesh_model="anny_fit", device="cpu")
    front, back = create_mesh_stage(config, cache), create_mesh_stage(config, cache)
    assert front.fitter.body is back.fitter.body and front.fitter is not back.fitter
    assert cache.stats.builds == 1
    warm_up(front)  # a fit on the front camera's stage ...
    front.fitter.fit([], None, (640, 480))
    assert back.fitter.report.people == 0 and back.fitter._frame == 0  # ... leaves the back camera's fitter alone
    alone = create_mesh_stage(config)  # without a cache: its own body, as before
    assert alone.fitter.body is not front.fitter.body


def test_mesh_process_sessions_share_one_child() -> None:
    """Two cameras' mesh stages as sessions of one child process (one body model): both fit, each closes alone."""
    from pose_ros.core.body.anny_body import anny_cache_ready
    from pose_ros.core.meshing import MeshConfig
    from pose_ros.core.meshing.remote import RemoteMeshStage
    from pose_ros.core.meshing.stages import _STANDING_COCO17
    from pose_ros.core.model_cache import mesh_process
    from pose_ros.core.person import Person, bbox_from_keypoints
    from pose_ros.core.skeletons import COCO17

    if not anny_cache_ready():
        pytest.skip("Anny's model data is not built (scripts/setup.sh)")
    cache, config = ModelCache(), MeshConfig(mesh_model="anny_fit", device="cpu")
    front = RemoteMeshStage(config, process=mesh_process(cache, config, nice=0))
    back = RemoteMeshStage(config, process=mesh_process(cache, config, nice=0))
    child = front.process
    assert back.process is child and cache.stats.builds == 1
    confidences = np.full(len(_STANDING_COCO17), 0.9, np.float32)
    box = bbox_from_keypoints(_STANDING_COCO17, confidences)
    person = Person(_STANDING_COCO17.copy(), confidences, 0.9, box, COCO17.name)
    image, k = np.full((480, 640, 3), 128, np.uint8), np.array([[640.0, 0, 319.5], [0, 640.0, 239.5], [0, 0, 1]])
    for stage in (front, back):
        (fit,) = stage(image, [person], k, 500)
        assert fit is not None and len(fit.body_model.faces) <= 500
    front.close()
    assert child._process.poll() is None, "the back camera's session keeps the child"
    (fit,) = back(image, [person], k, 0)
    assert fit is not None
    back.close()
    assert child._process.poll() is not None, "the last session ended the child"
    fresh = mesh_process(cache, config, nice=0)
    assert fresh is not child and fresh.usable, "a new session after the end gets a new child"
    fresh.close()


# ----- two cameras over DDS -------------------------------------------------------------------------------------------


class Recorder(Node):
    """Records people and images per camera namespace."""

    def __init__(self, context: Context, cameras: tuple[str, ...]) -> None:
        super().__init__("camera_recorder", context=context)
        self.lock = threading.Lock()
        self.people: dict[str, list[tuple[float, PersonArray]]] = {c: [] for c in cameras}
        self.images: dict[str, dict[tuple[int, int], Image]] = {c: {} for c in cameras}
        self.statuses: set[str] = set()
        self.create_subscription(DiagnosticArray, "/diagnostics", self._store_statuses, 10)
        for camera in cameras:
            self.create_subscription(PersonArray, f"/{camera}/people", self._store_people(camera), 50)
            self.create_subscription(Image, f"/{camera}/image", self._store_image(camera), 50)

    def _store_statuses(self, msg: DiagnosticArray) -> None:
        with self.lock:
            self.statuses.update(status.name for status in msg.status)

    def _store_people(self, camera: str):
        def store(msg: PersonArray) -> None:
            with self.lock:
                self.people[camera].append((time.monotonic(), msg))

        return store

    def _store_image(self, camera: str):
        def store(msg: Image) -> None:
            with self.lock:
                self.images[camera][(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg

        return store

    def count(self, camera: str, mode: str | None = None) -> int:
        with self.lock:
            return sum(1 for _, m in self.people[camera] if mode is None or m.mode == mode)

    def wait(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:.0f} s for {what}")
            time.sleep(0.05)


def two_camera_params(tmp_path: Path) -> Path:
    """config/pose.yaml on the CPU with Anny meshes now and then, and per camera its own image_source frame id."""
    config = yaml.safe_load(CONFIG_FILE.read_text())
    shared = {"device": "cpu", "mesh_model": "anny_fit", "mesh_rate_hz": 0.5, "image_reliability": "reliable"}
    config["/**/pose_node"]["ros__parameters"] |= shared
    for camera in ("front", "back"):
        config[f"/{camera}/image_source"] = {"ros__parameters": {"frame_id": f"{camera}_optical_frame"}}
    config["/back/pose_node"] = {"ros__parameters": {"max_people": 4}}
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_two_cameras_over_dds_share_models_and_switch_modes_independently(
    tmp_path, demo_data, shared_data, human_models, monkeypatch
) -> None:
    """front: vtest.avi; back: a folder of COCO photos. Each namespace gets its own people with its own headers;
    the networks are loaded once; back switches to top_down (its load held open here) while front keeps publishing
    bottom_up results throughout."""
    folder = tmp_path / "stills"
    folder.mkdir()
    for path in sorted((shared_data / "coco-sample").glob("*.jpg")):
        shutil.copy(path, folder / path.name)
    still_sizes = {cv2.imread(str(p)).shape[:2][::-1] for p in folder.iterdir()}
    # Hold the top_down load open until the test has seen the other camera publish meanwhile (a real load follows).
    loading, release = threading.Event(), threading.Event()
    real_create = pipeline_module.create_estimator

    def held_create(config: PipelineConfig):
        if config.mode == "top_down":
            loading.set()
            release.wait(60)
        return real_create(config)

    monkeypatch.setattr(pipeline_module, "create_estimator", held_create)
    params = two_camera_params(tmp_path)
    args = LaunchArguments(
        params_file=params,
        cameras=("front", "back"),
        source=f"{demo_data / 'vtest.avi'},{folder}",
        source_overrides={"rate": 4.0, "loop": True},
    )
    context = Context()
    rclpy.init(args=ros_arguments(args), context=context)
    nodes = start_nodes(args, context=context)
    recorder = Recorder(context, args.cameras)
    nodes.executor.add_node(recorder)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set() and context.ok():
            nodes.executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    switcher = None
    try:
        front, back = (camera.pose_node for camera in nodes.cameras)
        assert [c.namespace for c in nodes.cameras] == ["front", "back"]
        assert front.get_fully_qualified_name() == "/front/pose_node"
        assert (front.get_parameter("max_people").value, back.get_parameter("max_people").value) == (6, 4)
        assert front._pipeline.estimator(front.settings.pipeline) is back._pipeline.estimator(back.settings.pipeline)
        meshes = [node.mesh_worker.stage for node in (front, back)]
        assert meshes[0] is not meshes[1] and meshes[0].process is meshes[1].process, "one mesh child, two fitters"
        assert nodes.models.stats.builds == 2, "two cameras, one configuration: one network and one mesh child"
        recorder.wait(lambda: min(recorder.count("front"), recorder.count("back")) >= 3, 90, "people on both cameras")

        with recorder.lock:
            people = {camera: [m for _, m in recorder.people[camera]] for camera in args.cameras}
            images = {camera: dict(recorder.images[camera]) for camera in args.cameras}
        for camera, other in (("front", "back"), ("back", "front")):
            for msg in people[camera]:
                key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
                assert msg.header.frame_id == f"{camera}_optical_frame"
                assert key in images[camera] and key not in images[other], "its own camera's frame"
                assert msg.header == images[camera][key].header
                assert msg.mode == "bottom_up"
        assert all((m.image_width, m.image_height) == (768, 576) for m in people["front"])
        assert all((m.image_width, m.image_height) in still_sizes for m in people["back"])
        assert max(len(m.people) for m in people["front"]) >= 2  # vtest.avi's walkers
        assert max(len(m.people) for m in people["back"]) <= 4 and any(m.people for m in people["back"])
        names = {f"{camera}/pose_node: pose estimation" for camera in args.cameras}
        recorder.wait(lambda: names <= recorder.statuses, 10, f"/diagnostics statuses {names}")

        # back switches to top_down; while its model loads, front's output goes on.
        result: list = []
        to_top_down = [Parameter("mode", value="top_down")]
        switcher = threading.Thread(target=lambda: result.extend(back.set_parameters(to_top_down)))
        switcher.start()
        assert loading.wait(30), "the top_down model load started"
        before = recorder.count("front")
        recorder.wait(lambda: recorder.count("front") >= before + 3, 60, "front publishing while back loads")
        assert switcher.is_alive(), "back's load was still held"
        release.set()
        switcher.join(120)
        assert result and result[0].successful, result
        recorder.wait(lambda: recorder.count("back", "top_down") >= 2, 90, "back's top_down results")
        switched_at = min(t for t, m in recorder.people["back"] if m.mode == "top_down")
        after = recorder.count("front")
        recorder.wait(lambda: recorder.count("front") >= after + 2, 60, "front after the switch")
        with recorder.lock:
            front_modes = {m.mode for _, m in recorder.people["front"]}
            front_after = [m for t, m in recorder.people["front"] if t > switched_at]
        assert front_modes == {"bottom_up"} and front_after, "front kept its own mode"
        assert front.settings.pipeline.mode == "bottom_up" and back.settings.pipeline.mode == "top_down"
        assert nodes.models.stats.builds == 3, "top_down loaded once, the bottom-up network not reloaded"
    finally:
        release.set()
        if switcher is not None:
            switcher.join(120)
        stop.set()
        spinner.join(10)
        nodes.shutdown(extra_nodes=(recorder,))
        rclpy.try_shutdown(context=context)
    assert meshes[0].process._process.wait(10) is not None, "the mesh child ended with the cameras"
