"""Anny fitting: exactness of the folded keypoint regressor and of the fitter's analytic Jacobian, recovery of known
poses/shapes through a known camera (cold and warm start), warm starts by track id, 3D targets, time budget,
decimation.

Needs PyPI anny and its built cache (scripts/setup.sh runs `python -m pose_ros.tools.prepare_anny`); skips otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from anny_scenes import CAMERA, HEIGHT, WIDTH, errors, make_people, move, random_states, render

from bench.fixtures.meshes import triangle_list_bytes
from pose_ros.core.body.anny_body import AnnyBody, anny_cache_ready, create_anny_model
from pose_ros.core.body.anny_fit import AnnyFitSettings, AnnyFitter
from pose_ros.core.body.rotations import axis_angle_to_matrix
from pose_ros.core.camera import project
from pose_ros.core.skeletons import COCO17


@pytest.fixture(scope="module")
def body() -> AnnyBody:
    pytest.importorskip("anny", reason="needs PyPI anny (requirements.txt)")
    if not anny_cache_ready():
        pytest.skip("needs Anny's built cache: run python -m pose_ros.tools.prepare_anny (scripts/setup.sh does)")
    return AnnyBody(create_anny_model("cpu"))


def test_folded_regressor_equals_anny(body: AnnyBody) -> None:
    # In float64: the fold is exact algebra, and float32 sums of the ear's regressor rows differ by ~1e-5 between
    # CPUs' kernels (AVX2 / AVX-512), so float32 would test the CPU rather than the fold.
    import anny

    body = AnnyBody(create_anny_model("cpu", torch.float64))
    rng = np.random.default_rng(1)
    bones = torch.tensor(rng.normal(0, 0.4, (2, len(body.bones), 3)), dtype=body.dtype)
    phenotypes = torch.tensor(rng.uniform(0, 1, (2, 6)), dtype=body.dtype)
    deltas = torch.eye(4, dtype=body.dtype).expand(2, body.model.bone_count, 4, 4).clone()
    deltas[:, body.bone_indices, :3, :3] = axis_angle_to_matrix(bones)
    with torch.no_grad():
        output = body.model(deltas, phenotypes, pose_parameterization="local-ref")
        expected = anny.KeypointsRegressor.coco(body.model, labels=list(COCO17.keypoints))(output)
        assert torch.allclose(body.keypoints(bones, body.shape(phenotypes)), expected, rtol=0, atol=1e-10)
        assert torch.allclose(body.vertices(bones, body.shape(phenotypes)), output["vertices"], rtol=0, atol=1e-10)


def test_recovery_cold_then_warm(body: AnnyBody) -> None:
    rng = np.random.default_rng(0)
    truth = random_states(body, rng, 3)
    fitter = AnnyFitter(AnnyFitSettings(time_budget_ms=0), body)
    points, pixels = render(body, truth)
    people = make_people(pixels)
    fitter.fit(people, CAMERA, (WIDTH, HEIGHT))
    cold_2d, cold_3d, cold_scaled = errors(people, points, pixels)
    assert fitter.report.warm == 0 and 1 < fitter.report.iterations <= fitter.settings.cold_iterations
    warm_2d, warm_3d, warm_scaled = [], [], []
    for _ in range(2):
        move(truth, rng)
        points, pixels = render(body, truth)
        people = make_people(pixels)
        fitter.fit(people, CAMERA, (WIDTH, HEIGHT))
        assert fitter.report.warm == 3 and 1 <= fitter.report.iterations <= fitter.settings.warm_iterations
        e2d, e3d, escaled = errors(people, points, pixels)
        warm_2d.append(e2d)
        warm_3d.append(e3d)
        warm_scaled.append(escaled)
    settings = fitter.settings
    print(
        f"\nAnny recovery, 3 people: cold {settings.cold_iterations} it: 2D {cold_2d:.2f} px, 3D {cold_3d:.0f} mm"
        f" ({cold_scaled:.0f} mm scaled); warm {settings.warm_iterations} it: 2D {np.round(warm_2d, 2)} px,"
        f" 3D {np.round(warm_3d, 0)} mm ({np.round(warm_scaled, 0)} mm scaled)"
    )
    assert cold_2d < 4.0
    assert max(warm_2d) < 2.0
    # 3D (hip-centred, from 2D alone): the Adam fitter this one replaced gave 144 mm cold, 122 / 89 mm warm here
    # (this one: 93, 95 / 85 mm); a warm start keeps what the earlier frames found (no drift back to the rest pose)
    assert cold_3d < 120.0
    assert max(warm_3d) < min(cold_3d + 10.0, 122.0)
    for person, state in zip(people, truth, strict=True):
        model = person.body_model
        assert model is not None and model.name == "anny"
        assert model.betas.shape == (6,) and np.all((model.betas >= 0) & (model.betas <= 1))
        assert model.pose_joint_names == ("root", *body.bones) and model.pose.shape == (3 * (1 + len(body.bones)),)
        assert model.vertices.shape == (13718, 3) and model.faces.shape == (27420, 3)
        # depth trades off against body size (phenotypes) in 2D: only a loose bound
        assert abs(model.translation[2] - state.translation[2]) < 0.35 * state.translation[2]
        # the mesh sits where the keypoints are: its projected box contains the true keypoints (with margin)
        mesh_px = project(model.vertices.astype(np.float64), CAMERA)
        true_px = project(render(body, [state])[0][0], CAMERA)
        assert np.all(true_px > mesh_px.min(0) - 5) and np.all(true_px < mesh_px.max(0) + 5)


def test_warm_start_by_track_id_and_untracked_people_start_afresh(body: AnnyBody) -> None:
    rng = np.random.default_rng(3)
    truth = random_states(body, rng, 2)
    truth[0].translation[0], truth[1].translation[0] = -1.2, 1.2
    fitter = AnnyFitter(AnnyFitSettings(time_budget_ms=0), body)
    fitter.fit(make_people(render(body, truth)[1]), CAMERA, (WIDTH, HEIGHT))
    move(truth, rng)
    people = make_people(render(body, truth)[1])[::-1]  # other order: matched by track id, not by index
    fitter.fit(people, CAMERA, (WIDTH, HEIGHT))
    assert fitter.report.warm == 2 and fitter.report.iterations <= fitter.settings.warm_iterations
    assert people[0].body_model.translation[0] > 0.5 and people[1].body_model.translation[0] < -0.5
    untracked = make_people(render(body, truth)[1], tracked=False)
    fitter.fit(untracked, CAMERA, (WIDTH, HEIGHT))
    assert fitter.report.warm == 0
    fitter.reset()
    fitter.fit(make_people(render(body, truth)[1]), CAMERA, (WIDTH, HEIGHT))
    assert fitter.report.warm == 0


def test_tracked_people_get_a_temporal_pose_prior_that_loosens_with_the_gap(body: AnnyBody) -> None:
    rng = np.random.default_rng(4)
    truth = random_states(body, rng, 1)
    settings = AnnyFitSettings(time_budget_ms=0)
    fitter = AnnyFitter(settings, body)
    fitter.fit(make_people(render(body, truth)[1]), CAMERA, (WIDTH, HEIGHT))
    track = fitter._tracks[0]
    fitter._frame += 1  # as during the next fit call
    centre, weight = fitter._pose_priors([None, track])
    assert np.all(centre[0] == 0) and weight[0] == settings.pose_prior_weight  # a new person: the rest pose
    temporal, rest = settings.temporal_pose_weight, settings.warm_pose_prior_weight
    assert weight[1] == pytest.approx(rest + temporal)
    np.testing.assert_allclose(centre[1], temporal / (rest + temporal) * track.state.bones)
    fitter._frame += 4  # unseen for 4 more frames: the previous pose says less
    later_centre, later_weight = fitter._pose_priors([track])
    assert later_weight[0] == pytest.approx(rest + temporal / 5)
    assert np.abs(later_centre[0]).sum() < np.abs(centre[1]).sum()


def test_analytic_jacobian_matches_finite_differences(body: AnnyBody) -> None:
    """The fitter's d keypoints / d parameters (root rotation on the manifold, translation, bones, phenotype
    logits) against central differences of its own forward."""
    from pose_ros.core.body.anny_body import AnnyShape
    from pose_ros.core.body.anny_solver import DTYPE, AnnyLeastSquares, FitBatch

    problem = AnnyLeastSquares(body, AnnyFitSettings())
    rng = np.random.default_rng(11)
    joints = len(body.bones)
    batch = FitBatch(
        axis_angle_to_matrix(torch.tensor(rng.normal(0, 1, (2, 3)))),
        torch.tensor([[0.1, 0.2, 5.0], [-0.3, 0.0, 4.0]]),
        torch.tensor(rng.normal(0, 0.4, (2, joints, 3))),
        torch.tensor(rng.normal(0, 0.5, (2, 6))),
        AnnyShape.cat([problem.mean_shape] * 2),
        torch.full((2, 6), 0.5, dtype=DTYPE),
        torch.tensor([True, True]),
    )
    with torch.no_grad():
        analytic = problem.point_jacobian(batch, *problem.camera_points(batch))
        numeric = torch.zeros_like(analytic)
        for p in range(analytic.shape[-1]):
            delta = torch.zeros(2, analytic.shape[-1], dtype=DTYPE)
            delta[:, p] = 1e-6
            plus = problem.camera_points(problem.step(batch, delta))[0]
            minus = problem.camera_points(problem.step(batch, -delta))[0]
            numeric[..., p] = (plus - minus) / 2e-6
    assert numeric.abs().max() > 0.1
    assert torch.allclose(analytic, numeric, atol=1e-6)


def test_normal_equations_gradient_is_half_the_cost_gradient(body: AnnyBody) -> None:
    """The LM gradient of every term (reprojection, robust 3D, a temporal pose prior centred off the rest pose,
    hinges, the logit shape prior) against central differences of the cost itself."""
    from pose_ros.core.body.anny_body import AnnyShape
    from pose_ros.core.body.anny_solver import DTYPE, AnnyLeastSquares, FitBatch, FitTargets

    problem = AnnyLeastSquares(body, AnnyFitSettings())
    rng = np.random.default_rng(12)
    joints = len(body.bones)
    truth = random_states(body, rng, 2)
    points, pixels = render(body, truth)
    batch = FitBatch(
        torch.tensor(np.stack([s.rotation for s in truth])),
        torch.tensor(np.stack([s.translation for s in truth])) + 0.1,
        torch.tensor(np.stack([s.bones for s in truth])) + torch.tensor(rng.normal(0, 0.1, (2, joints, 3))),
        torch.tensor(rng.normal(0, 1.5, (2, 6))),
        AnnyShape.cat([problem.mean_shape] * 2),
        torch.full((2, 6), 0.5, dtype=DTYPE),
        torch.tensor([True, True]),
    )
    weight_3d = torch.zeros(2, 17, dtype=DTYPE)
    weight_3d[1, :8] = 1.0
    targets = FitTargets(
        torch.tensor(np.stack(pixels)) + 3.0,
        torch.full((2, 17), 1.0 / 300.0**2, dtype=DTYPE),
        torch.tensor(np.stack(points)),
        weight_3d,
        torch.tensor(rng.normal(0, 0.3, (2, joints, 3))),  # e.g. between the rest and the previous pose
        torch.tensor([5e-4, 1.1e-3], dtype=DTYPE),
    )
    camera = torch.tensor(CAMERA)
    with torch.no_grad():
        _, gradient = problem.normal_equations(batch, targets, camera)
        numeric = torch.zeros_like(gradient)
        for p in range(gradient.shape[-1]):
            delta = torch.zeros_like(gradient)
            delta[:, p] = 1e-6
            plus = problem.costs(moved := problem.step(batch, delta), problem.camera_points(moved)[0], targets, camera)
            moved = problem.step(batch, -delta)
            minus = problem.costs(moved, problem.camera_points(moved)[0], targets, camera)
            numeric[:, p] = (plus - minus) / 2e-6
    assert numeric.abs().max() > 1e-3
    assert torch.allclose(2 * gradient, numeric, rtol=1e-3, atol=1e-6)


def test_3d_targets_fix_the_depth(body: AnnyBody) -> None:
    rng = np.random.default_rng(5)
    truth = random_states(body, rng, 1)
    points, pixels = render(body, truth)
    people = make_people(pixels)
    people[0].keypoints_3d = points[0].astype(np.float32)
    people[0].keypoints_3d[9, 2] += 2.0  # one depth reading hit the background behind the wrist: an outlier
    fitter = AnnyFitter(AnnyFitSettings(time_budget_ms=0), body)
    fitter.fit(people, CAMERA, (WIDTH, HEIGHT))
    model = people[0].body_model
    bones = torch.tensor(model.pose[3:].reshape(1, -1, 3), dtype=body.dtype)
    with torch.no_grad():  # the published parameters reproduce the fit
        fitted = body.keypoints(bones, body.shape(torch.tensor(model.betas[None], dtype=body.dtype)))[0].double()
    fitted = fitted.numpy()
    root = axis_angle_to_matrix(torch.tensor(people[0].body_model.pose[:3], dtype=torch.float64)).numpy()
    fitted = fitted @ root.T + people[0].body_model.translation
    error_mm = 1000 * np.median(np.linalg.norm(fitted - points[0], axis=1))
    print(f"\nAnny fit with 3D targets: median 3D error {error_mm:.0f} mm (no alignment)")
    assert error_mm < 40.0


def test_people_without_enough_keypoints_get_no_fit(body: AnnyBody) -> None:
    rng = np.random.default_rng(7)
    pixels = render(body, random_states(body, rng, 1))[1]
    people = make_people(pixels)
    people[0].confidences[:] = 0.0
    people[0].confidences[[5, 6, 11]] = 0.9
    fitter = AnnyFitter(AnnyFitSettings(time_budget_ms=0), body)
    fitter.fit(people, CAMERA, (WIDTH, HEIGHT))
    assert people[0].body_model is None and people[0].keypoints_3d is None and fitter.report.people == 0


def test_time_budget_stops_iterating(body: AnnyBody) -> None:
    pixels = render(body, random_states(body, np.random.default_rng(9), 1))[1]
    fitter = AnnyFitter(AnnyFitSettings(time_budget_ms=1e-3), body)
    people = make_people(pixels)
    fitter.fit(people, None, (WIDTH, HEIGHT))  # no camera matrix: default intrinsics of the image size (= CAMERA)
    assert fitter.report.iterations == 1 and people[0].body_model is not None
    # the PnP first guess alone already lands near the keypoints
    assert fitter.report.reprojection_px[0] < 0.1 * np.ptp(pixels[0], axis=0).max()


def test_decimated_mesh_and_marker_size(body: AnnyBody) -> None:
    fitter = AnnyFitter(AnnyFitSettings(), body)
    decimator = fitter.decimator(3000)
    vertices, faces = decimator(body.rest_vertices())
    assert 1000 < len(faces) <= 3000 and faces.max() < len(vertices)
    assert triangle_list_bytes(len(fitter.faces)) == 27420 * 72


def test_render_meshes_paints_nearest_surface_on_top() -> None:
    from bench.fixtures.render import Mesh, render_meshes

    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)

    def square(depth: float, half: float) -> np.ndarray:
        return np.array([[-half, -half, depth], [half, -half, depth], [half, half, depth], [-half, half, depth]])

    faces = np.array([[0, 1, 2], [0, 2, 3]])
    far, near = Mesh(square(4.0, 1.0), faces, (255, 0, 0)), Mesh(square(2.0, 0.1), faces, (0, 255, 0))
    out = render_meshes(image, [near, far], CAMERA, alpha=1.0)  # order given: near first; painted far first
    centre = (round(float(CAMERA[1, 2])), round(float(CAMERA[0, 2])))
    assert out[centre][0] == 0 and out[centre][1] > 240 and out[centre][2] == 0  # facing the camera: ~full light
    far_only = (centre[0], centre[1] + int(0.5 / 4.0 * CAMERA[0, 0]))  # 0.5 m right at 4 m: inside far square
    assert out[far_only][0] > 240 and out[far_only][1:].sum() == 0
    assert out[5, 5].sum() == 0  # outside both squares the image is untouched
    half = render_meshes(np.full_like(image, 100), [far], CAMERA, alpha=0.5)
    assert 170 < half[far_only][0] <= 178 and tuple(half[far_only][1:]) == (50, 50)


@pytest.mark.parametrize(
    "field, value", [("warm_iterations", 0), ("min_confidence", 1.5), ("damping", 0.0), ("bones", ())]
)
def test_settings_validation(field: str, value: object) -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match=field):
        replace(AnnyFitSettings(), **{field: value}).validate()
    AnnyFitSettings().validate()


def test_a_fit_that_does_not_explain_the_person_is_not_published_and_its_track_starts_afresh(body: AnnyBody) -> None:
    """Keypoints no body can take (the legs mirrored above the head, the arms moved as a whole above the raised feet)
    leave a fit error of ~0.23 of the person's extent (a good fit: ~0.002; the legs alone are not enough: upside
    down, a body explains them to 0.03-0.19 of its extent depending on the CPU's float32 kernels). With
    `max_error_fraction` 0.1 no mesh is published for that person (a wrong mesh is worse than none: on vtest.avi
    such fits were blobs 30-55 m away) and the next frame does not start from it; the well-posed person beside it is
    published. With 0 every fit is published."""
    rng = np.random.default_rng(11)
    truth = random_states(body, rng, 2)
    truth[0].translation[0], truth[1].translation[0] = -1.2, 1.2

    def frame() -> list:
        people = make_people(render(body, truth)[1])
        xy = people[1].keypoints_xy
        top = xy[:5, 1].min()
        xy[11:17, 1] = top - (xy[11:17, 1] - top)  # hips, knees, ankles mirrored about the top of the head
        xy[5:11, 1] += 2 * (xy[15:17, 1].max() - xy[5:11, 1].mean())  # shoulders to wrists: above the feet
        return people

    fitter = AnnyFitter(AnnyFitSettings(time_budget_ms=0, max_error_fraction=0.1), body)
    people = frame()
    fitter.fit(people, CAMERA, (WIDTH, HEIGHT))
    assert people[0].body_model is not None and people[1].body_model is None and people[1].keypoints_3d is None
    assert fitter.report.rejected == 1
    fitter.fit(frame(), CAMERA, (WIDTH, HEIGHT))
    assert fitter.report.warm == 1  # only the published person starts from its solution
    unguarded = frame()
    AnnyFitter(AnnyFitSettings(time_budget_ms=0, max_error_fraction=0.0), body).fit(unguarded, CAMERA, (WIDTH, HEIGHT))
    assert unguarded[1].body_model is not None
