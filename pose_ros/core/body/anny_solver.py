"""The least-squares problem behind `AnnyFitter`: Anny's keypoints against a frame's observations, solved for all people
at once by Levenberg–Marquardt with an analytic Jacobian.

Per person (N rows of a `FitBatch`, float64): root rotation R (3, 3), updated on the manifold (R ← exp([δω]ₓ) R),
translation (3,) m, J bone rotation vectors, 6 phenotype logits — P = 6 + 3J + 6 parameters. Cost: confidence-weighted
squared reprojection error in units of the person's size (`FitTargets.weight` = confidence / size²), robust
(Geman–McClure) 3D keypoint error, pose prior (squared angles from a per-person centre: the rest pose, or between
it and a tracked person's previous pose), elbow/knee hinges, shape prior (squared phenotype logits: keeps the
phenotypes off their bounds, where the sigmoid's slope vanishes and a phenotype could not come back).

A bone's rotation turns the keypoint mass of its subtree about its joint, so the Jacobian is analytic: one forward
kinematics over the J free bones, a few batched products and a (P × P) solve per person and iteration. The phenotypes
enter linearised: Anny's shape (`AnnyShape`) is exact at `FitBatch.base_phenotypes` and moves along derivatives taken
once at the mean shape; `rebase` makes it exact again.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from pose_ros.core.body.anny_body import NUM_PHENOTYPES, AnnyBody, AnnyShape, free_bone_poses, keypoints_from_poses
from pose_ros.core.body.rotations import axis_angle_to_matrix

if TYPE_CHECKING:
    from pose_ros.core.body.anny_fit import AnnyFitSettings

DTYPE = torch.float64  # the optimisation's dtype (normal equations want it; the tensors are tiny)
_PHENOTYPE_STEP = 0.05  # central-difference step of the shape derivatives at the mean shape
_MIN_DEPTH_M = 0.05
# A new person's linearised shape is replaced by the exact one at these fractions of its iterations.
_REBASE_FRACTIONS = (0.5,)
# Then, once the phenotypes are found, the exact shape at them and this many pose-only iterations.
_POLISH_ITERATIONS = 1


@dataclass
class FitTargets:
    """Batched observations of the fitted people (float64 torch, N rows)."""

    xy: torch.Tensor  # (N, 17, 2) px
    weight: torch.Tensor  # (N, 17) confidence / size², 0 when ignored
    xyz: torch.Tensor  # (N, 17, 3) m, camera frame
    weight_3d: torch.Tensor  # (N, 17) confidence of 3D keypoints, 0 when absent
    pose_centre: torch.Tensor  # (N, J, 3) rad: the pose prior's centre (0: the rest pose)
    pose_weight: torch.Tensor  # (N,) weight of the pose prior (per radian²)

    def select(self, index: torch.Tensor) -> FitTargets:
        return FitTargets(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))


@dataclass
class FitBatch:
    """The people being optimised (N rows, float64): parameters, the shape they are linearised at, and which of them
    move their phenotypes."""

    rotation: torch.Tensor  # (N, 3, 3)
    translation: torch.Tensor  # (N, 3) m
    bones: torch.Tensor  # (N, J, 3) rad
    logits: torch.Tensor  # (N, 6) phenotype logits
    base: AnnyShape  # exact at base_phenotypes
    base_phenotypes: torch.Tensor  # (N, 6)
    fit_shape: torch.Tensor  # (N,) bool

    def select(self, index: torch.Tensor) -> FitBatch:
        return FitBatch(
            self.rotation[index], self.translation[index], self.bones[index], self.logits[index],
            self.base.select(index), self.base_phenotypes[index], self.fit_shape[index],
        )  # fmt: skip


def _left_jacobian(rotvecs: torch.Tensor) -> torch.Tensor:
    """SO(3) left Jacobians (..., 3, 3) of axis-angle vectors (..., 3): exp(r + δ) ≈ exp(J_l(r) δ) exp(r)."""
    theta_sq = (rotvecs * rotvecs).sum(-1)[..., None, None]
    small = theta_sq < 1e-8
    safe_sq = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    safe = safe_sq.sqrt()
    a = torch.where(small, 0.5 - theta_sq / 24.0, (1.0 - torch.cos(safe)) / safe_sq)
    b = torch.where(small, 1.0 / 6.0 - theta_sq / 120.0, (safe - torch.sin(safe)) / (safe_sq * safe))
    x, y, z = rotvecs.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).unflatten(-1, (3, 3))
    eye = torch.eye(3, dtype=rotvecs.dtype, device=rotvecs.device)
    return eye + a * skew + b * (skew @ skew)


def _block_diagonal(blocks: torch.Tensor) -> torch.Tensor:
    """Blocks (..., J, 3, 3) → the block-diagonal matrices (..., 3J, 3J)."""
    j = blocks.shape[-3]
    eye = torch.eye(j, dtype=blocks.dtype, device=blocks.device)
    return torch.einsum("...jde,jk->...jdke", blocks, eye).reshape(*blocks.shape[:-3], 3 * j, 3 * j)


def project_points(points: torch.Tensor, camera_matrix: torch.Tensor) -> torch.Tensor:
    """Points (..., 3) m in the camera optical frame → pixels (..., 2); depths clamped to ≥ 5 cm, so that a body
    pushed behind the camera by a step costs much instead of flipping through the image."""
    z = points[..., 2].clamp_min(_MIN_DEPTH_M)
    u = camera_matrix[0, 0] * points[..., 0] / z + camera_matrix[0, 2]
    v = camera_matrix[1, 1] * points[..., 1] / z + camera_matrix[1, 2]
    return torch.stack([u, v], dim=-1)


class AnnyLeastSquares:
    """Anny fitted to keypoints as a batched least-squares problem (see the module docstring).

    Args:
        body: the prepared body model.
        settings: iterations, damping, tolerance, time budget and prior weights (see `AnnyFitSettings`).
    Attributes:
        mean_shape: `AnnyShape` (batch of 1, float64) at the mean phenotypes, a new person's start.
    """

    def __init__(self, body: AnnyBody, settings: AnnyFitSettings) -> None:
        self.body, self.settings = body, settings
        with torch.no_grad():
            mean = body.mean_phenotypes(1)
            steps = torch.eye(NUM_PHENOTYPES, dtype=body.dtype, device=body.device) * _PHENOTYPE_STEP
            shapes = body.shape(torch.cat([mean, mean + steps, mean - steps])).to(DTYPE)
        self.mean_shape = shapes.select([0])
        plus, minus = slice(1, 1 + NUM_PHENOTYPES), slice(1 + NUM_PHENOTYPES, None)
        scale = 0.5 / _PHENOTYPE_STEP
        self._d_chain_before = (shapes.chain_before[plus] - shapes.chain_before[minus]) * scale  # (6, J, 4, 4)
        self._d_anchors = (shapes.keypoint_anchors[plus] - shapes.keypoint_anchors[minus]) * scale  # (6, 17, G, 4)
        axes = body.hinge_axes.to(DTYPE)
        self._hinge_axes = axes  # (J, 3), zero rows for bones without a hinge
        self._is_hinge = (axes.abs().sum(-1) > 0).to(DTYPE)  # (J,)
        eye = torch.eye(3, dtype=DTYPE, device=axes.device)
        # Hessian of the hinges' off-axis term (constant), per bone (J, 3, 3); the pose prior's is per person.
        off_axis = eye - axes[:, :, None] * axes[:, None, :]
        self._prior_hessian = settings.hinge_weight * self._is_hinge[:, None, None] * (off_axis @ off_axis)
        self._prior_block = _block_diagonal(self._prior_hessian)  # (3J, 3J)
        self._subtree = body.tree.subtree.to(DTYPE)
        self._chain_after = self.mean_shape.chain_after

    def shape_at(self, batch: FitBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The linearised shape at the batch's phenotypes: chain_before (N, J, 4, 4), keypoint anchors
        (N, 17, G, 4), and the phenotype offsets from the base (N, 6)."""
        offset = torch.sigmoid(batch.logits) - batch.base_phenotypes
        if not bool(batch.fit_shape.any()):  # every shape held: the base is exact
            return batch.base.chain_before, batch.base.keypoint_anchors, offset
        before = batch.base.chain_before + torch.einsum("bi,ijde->bjde", offset, self._d_chain_before)
        anchors = batch.base.keypoint_anchors + torch.einsum("bi,ikgd->bkgd", offset, self._d_anchors)
        return before, anchors, offset

    def camera_points(self, batch: FitBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keypoints (N, 17, 3) in the camera frame, with the free-bone poses, pivots and anchors they came from."""
        before, anchors, _ = self.shape_at(batch)
        poses, pivots = free_bone_poses(batch.bones, before, self._chain_after, self.body.tree)
        model = keypoints_from_poses(poses, anchors)
        points = torch.einsum("bde,bke->bkd", batch.rotation, model) + batch.translation[:, None]
        return points, poses, pivots, anchors

    def costs(self, batch: FitBatch, points: torch.Tensor, targets: FitTargets, camera: torch.Tensor) -> torch.Tensor:
        """Cost (N,) per person: reprojection + robust 3D + pose, hinge and shape priors."""
        s = self.settings
        residual = project_points(points, camera) - targets.xy
        cost = (targets.weight * (residual**2).sum(-1)).sum(-1)
        squared_3d = ((points - targets.xyz) ** 2).sum(-1) / s.keypoints_3d_scale_m**2
        cost = cost + s.keypoints_3d_weight * (targets.weight_3d * squared_3d / (1.0 + squared_3d)).sum(-1)
        bones = batch.bones
        angle = (bones * self._hinge_axes).sum(-1)
        off_axis = ((bones - angle[..., None] * self._hinge_axes) ** 2).sum(-1)
        hinge = self._is_hinge * (torch.relu(-angle) ** 2 + off_axis)
        pose = targets.pose_weight * ((bones - targets.pose_centre) ** 2).sum((-1, -2))
        cost = cost + pose + s.hinge_weight * hinge.sum(-1)
        return cost + s.shape_prior_weight * (batch.logits**2).sum(-1)

    def point_jacobian(
        self, batch: FitBatch, points: torch.Tensor, poses: torch.Tensor, pivots: torch.Tensor, anchors: torch.Tensor
    ) -> torch.Tensor:
        """d points / d (δω, t, bones, phenotype logits): (N, 17, 3, 6 + 3J + 6).

        A bone's rotation turns the keypoint mass of its subtree (c_ka with homogeneous weight h_ka) about its joint
        p_a: δx = (R_pivot J_l(b_a) δb_a) × (c_ka − h_ka p_a). The phenotype columns are finite differences of the
        linearised shape (zero for people whose shape is held)."""
        n, j = batch.bones.shape[:2]
        contributions = torch.einsum("bgde,bkge->bkgd", poses[:, :, :3, :], anchors)  # (N, 17, G, 3)
        mass = torch.einsum("bkgd,ga->bkad", contributions, self._subtree)
        weight = torch.einsum("bkg,ga->bka", anchors[..., 3], self._subtree)
        lever = mass - weight[..., None] * pivots[:, None, :, :3, 3]  # (N, 17, J, 3)
        axes = pivots[:, :, :3, :3] @ _left_jacobian(batch.bones)  # (N, J, 3, 3): columns = world axes per δb
        d_model = torch.linalg.cross(axes.transpose(-1, -2)[:, None], lever[:, :, :, None, :].expand(-1, -1, -1, 3, -1))
        d_bones = d_model @ batch.rotation.transpose(-1, -2)[:, None, None]  # (N, 17, J, 3 params, 3 coordinates)
        d_bones = d_bones.permute(0, 1, 4, 2, 3).reshape(n, 17, 3, 3 * j)
        offsets = points - batch.translation[:, None]  # R · model keypoints
        eye = torch.eye(3, dtype=DTYPE, device=points.device)
        d_root = torch.linalg.cross(eye.expand(n, 17, 3, 3), offsets[:, :, None, :].expand(-1, -1, 3, -1))
        d_root = d_root.transpose(-1, -2)  # column e: e_e × (R x)
        d_translation = eye.expand(n, 17, 3, 3)
        d_phenotypes = points.new_zeros(n, 17, 3, NUM_PHENOTYPES)
        shaped = batch.fit_shape.nonzero().squeeze(1)
        if len(shaped):
            d_phenotypes[shaped] = self.phenotype_jacobian(batch.select(shaped), points[shaped])
        return torch.cat([d_root, d_translation, d_bones, d_phenotypes], dim=-1)

    def phenotype_jacobian(self, batch: FitBatch, points: torch.Tensor) -> torch.Tensor:
        """d points / d logits (N, 17, 3, 6) by forward differences along each phenotype (one batched pass)."""
        step = 1e-4
        n = batch.bones.shape[0]
        before, anchors, _ = self.shape_at(batch)
        before = (before[:, None] + step * self._d_chain_before[None]).flatten(0, 1)  # (N·6, J, 4, 4)
        anchors = (anchors[:, None] + step * self._d_anchors[None]).flatten(0, 1)
        bones = batch.bones.repeat_interleave(NUM_PHENOTYPES, dim=0)
        poses, _ = free_bone_poses(bones, before, self._chain_after, self.body.tree)
        model = keypoints_from_poses(poses, anchors).unflatten(0, (n, NUM_PHENOTYPES))  # (N, 6, 17, 3)
        moved = torch.einsum("bde,bike->bikd", batch.rotation, model) + batch.translation[:, None, None]
        phenotypes = torch.sigmoid(batch.logits)
        per_phenotype = (moved - points[:, None]) / step  # (N, 6, 17, 3)
        return (per_phenotype * (phenotypes * (1 - phenotypes))[:, :, None, None]).permute(0, 2, 3, 1)

    def normal_equations(
        self, batch: FitBatch, targets: FitTargets, camera: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gauss–Newton H (N, P, P) and gradient g (N, P) of the cost at the batch's parameters."""
        s = self.settings
        points, poses, pivots, anchors = self.camera_points(batch)
        jacobian = self.point_jacobian(batch, points, poses, pivots, anchors)  # (N, 17, 3, P)
        z = points[..., 2].clamp_min(_MIN_DEPTH_M)
        fx, fy = camera[0, 0], camera[1, 1]
        zero = torch.zeros_like(z)
        d_pixels = torch.stack(
            [fx / z, zero, -fx * points[..., 0] / z**2, zero, fy / z, -fy * points[..., 1] / z**2], dim=-1
        ).unflatten(-1, (2, 3))  # (N, 17, 2, 3)
        j2 = d_pixels @ jacobian  # (N, 17, 2, P)
        r2 = project_points(points, camera) - targets.xy
        root_w = targets.weight.sqrt()[..., None, None]
        weighted = (j2 * root_w).flatten(1, 2)  # (N, 34, P)
        hessian = weighted.transpose(1, 2) @ weighted
        gradient = (weighted.transpose(1, 2) @ (r2[..., None] * root_w).flatten(1, 2)).squeeze(-1)
        if bool((targets.weight_3d > 0).any()):  # robust 3D term by reweighting: ρ'(s) = 1 / (1 + s)²
            e3 = points - targets.xyz
            squared = (e3**2).sum(-1) / s.keypoints_3d_scale_m**2
            w3 = s.keypoints_3d_weight * targets.weight_3d / (1.0 + squared) ** 2 / s.keypoints_3d_scale_m**2
            root_w3 = w3.sqrt()[..., None, None]
            weighted_3d = (jacobian * root_w3).flatten(1, 2)  # (N, 51, P)
            hessian = hessian + weighted_3d.transpose(1, 2) @ weighted_3d
            gradient = gradient + (weighted_3d.transpose(1, 2) @ (e3[..., None] * root_w3).flatten(1, 2)).squeeze(-1)
        # Priors: pose and hinge off-axis (quadratic), hinge backwards (one-sided), shape.
        n, j = batch.bones.shape[:2]
        bones = batch.bones
        bone_slice = slice(6, 6 + 3 * j)
        angle = (bones * self._hinge_axes).sum(-1)  # (N, J)
        backwards = (angle < 0).to(DTYPE) * self._is_hinge
        outer = self._hinge_axes[:, :, None] * self._hinge_axes[:, None, :]  # (J, 3, 3)
        hinge_h = s.hinge_weight * backwards[..., None, None] * outer  # (N, J, 3, 3)
        hessian[:, bone_slice, bone_slice] += self._prior_block + _block_diagonal(hinge_h)
        hessian[:, bone_slice, bone_slice] += torch.diag_embed(targets.pose_weight[:, None].expand(-1, 3 * j))
        prior_g = torch.einsum("jde,bje->bjd", self._prior_hessian, bones)
        prior_g = prior_g + targets.pose_weight[:, None, None] * (bones - targets.pose_centre)
        prior_g = prior_g + s.hinge_weight * (backwards * angle)[..., None] * self._hinge_axes
        gradient[:, bone_slice] += prior_g.reshape(n, 3 * j)
        shape_slice = slice(6 + 3 * j, None)
        shaped = batch.fit_shape.to(DTYPE)[:, None]
        hessian[:, shape_slice, shape_slice] += torch.diag_embed(
            (s.shape_prior_weight * shaped).expand(-1, NUM_PHENOTYPES)
        )
        gradient[:, shape_slice] += s.shape_prior_weight * batch.logits * shaped
        # People whose shape is held: identity rows, zero gradient (their phenotype step is 0).
        held = torch.diag_embed((1.0 - shaped).expand(-1, NUM_PHENOTYPES))
        hessian[:, shape_slice, shape_slice] += held
        return hessian, gradient

    def step(self, batch: FitBatch, delta: torch.Tensor) -> FitBatch:
        """The batch moved by delta (N, P): root rotation on the manifold, the rest additively."""
        j = batch.bones.shape[1]
        rotation = axis_angle_to_matrix(delta[:, :3]) @ batch.rotation
        return FitBatch(
            rotation,
            batch.translation + delta[:, 3:6],
            batch.bones + delta[:, 6 : 6 + 3 * j].reshape(-1, j, 3),
            batch.logits + delta[:, 6 + 3 * j :],
            batch.base,
            batch.base_phenotypes,
            batch.fit_shape,
        )

    def optimise(
        self,
        batch: FitBatch,
        warm: list[bool],
        targets: FitTargets,
        camera: torch.Tensor,
        start: float,
        reserve_ms: float,
    ) -> tuple[FitBatch, int]:
        """Batched Levenberg–Marquardt, each person with its own damping, iteration limit and convergence test.

        Args:
            batch: the people's starting points; warm: per person, whether it starts from an earlier solution.
            targets: their observations; camera: (3, 3) intrinsics.
            start: `time.perf_counter()` at the start of the `fit` call (the time budget counts from there).
            reserve_ms: time to keep for what follows the iterations (the meshes).
        Returns the solutions (people whose phenotypes moved hold their exact shape as base, unless the budget ran
        out first) and the iterations run.
        """
        s = self.settings
        device = batch.rotation.device
        limits = torch.tensor([s.warm_iterations if w else s.cold_iterations for w in warm], device=device)
        rebase_at = [() if w else tuple(int(f * s.cold_iterations) for f in _REBASE_FRACTIONS) for w in warm]
        damping = torch.full((len(warm),), s.damping, dtype=DTYPE, device=device)
        cost = self.costs(batch, self.camera_points(batch)[0], targets, camera)
        done = torch.zeros(len(warm), dtype=torch.long, device=device)
        mesh_ms = reserve_ms
        step_ms = 0.0
        iteration = 0
        for phase in ("fit", "polish"):
            if phase == "polish":  # the exact shape at the phenotypes found, then the pose alone once more
                shaped = batch.fit_shape.nonzero().squeeze(1)
                if len(shaped) == 0 or not self.within_budget(start, step_ms + mesh_ms):
                    break
                batch, cost = self.rebase(batch, shaped, targets, camera, cost)
                batch = dataclasses.replace(batch, fit_shape=torch.zeros_like(batch.fit_shape))
                limits = done.clone()
                limits[shaped] += _POLISH_ITERATIONS
            while True:
                active = (done < limits).nonzero().squeeze(1)
                if len(active) == 0:
                    break
                if iteration > 0 and not self.within_budget(start, step_ms + mesh_ms):
                    break
                step_start = time.perf_counter()
                rebase = [i for i in active.tolist() if int(done[i]) in rebase_at[i]] if phase == "fit" else []
                if rebase:  # new people: the exact shape at their phenotypes becomes the base
                    batch, cost = self.rebase(batch, torch.tensor(rebase, device=device), targets, camera, cost)
                everyone = len(active) == len(warm)
                sub, sub_targets = (batch, targets) if everyone else (batch.select(active), targets.select(active))
                hessian, gradient = self.normal_equations(sub, sub_targets, camera)
                diagonal = torch.diagonal(hessian, dim1=-2, dim2=-1)
                damped = hessian + torch.diag_embed(damping[active, None] * diagonal + 1e-9)
                delta = -torch.linalg.solve(damped, gradient)
                candidate = self.step(sub, delta)
                new_cost = self.costs(candidate, self.camera_points(candidate)[0], sub_targets, camera)
                accept = torch.isfinite(new_cost) & (new_cost < cost[active])
                converged = accept & (cost[active] - new_cost < s.tolerance * cost[active])
                batch = self.merge(batch, candidate, active[accept], accept.nonzero().squeeze(1))
                cost[active[accept]] = new_cost[accept]
                damping[active] = torch.where(accept, damping[active] / 3, damping[active] * 4).clamp(1e-7, 1e7)
                done[active] += 1
                done[active[converged]] = limits[active[converged]]
                iteration += 1
                step_ms = max(step_ms, (time.perf_counter() - step_start) * 1e3)
        return batch, iteration

    def within_budget(self, start: float, next_ms: float) -> bool:
        """Whether `next_ms` more still fit in the time budget of the `fit` call that started at `start`."""
        budget = self.settings.time_budget_ms
        return budget <= 0 or (time.perf_counter() - start) * 1e3 + next_ms <= budget

    def rebase(
        self, batch: FitBatch, index: torch.Tensor, targets: FitTargets, camera: torch.Tensor, cost: torch.Tensor
    ) -> tuple[FitBatch, torch.Tensor]:
        """Replace the linearised shape of the people at `index` by the exact shape at their phenotypes."""
        phenotypes = torch.sigmoid(batch.logits[index])
        exact = self.body.shape(phenotypes.to(self.body.dtype)).to(DTYPE)
        base = batch.base
        chain_before, anchors = base.chain_before.clone(), base.keypoint_anchors.clone()
        coefficients, offsets = base.coefficients.clone(), base.bone_offsets.clone()
        chain_before[index], anchors[index] = exact.chain_before, exact.keypoint_anchors
        coefficients[index], offsets[index] = exact.coefficients, exact.bone_offsets
        base_phenotypes = batch.base_phenotypes.clone()
        base_phenotypes[index] = phenotypes
        rebased = FitBatch(
            batch.rotation, batch.translation, batch.bones, batch.logits,
            AnnyShape(coefficients, chain_before, base.chain_after, anchors, offsets), base_phenotypes,
            batch.fit_shape,
        )  # fmt: skip
        cost = cost.clone()
        sub = rebased.select(index)
        cost[index] = self.costs(sub, self.camera_points(sub)[0], targets.select(index), camera)
        return rebased, cost

    @staticmethod
    def merge(batch: FitBatch, candidate: FitBatch, rows: torch.Tensor, picked: torch.Tensor) -> FitBatch:
        """The batch with rows `rows` replaced by the candidate's rows `picked` (parameters only)."""
        if len(rows) == 0:
            return batch
        out = []
        for whole, part in (
            (batch.rotation, candidate.rotation),
            (batch.translation, candidate.translation),
            (batch.bones, candidate.bones),
            (batch.logits, candidate.logits),
        ):
            whole = whole.clone()
            whole[rows] = part[picked]
            out.append(whole)
        return FitBatch(*out, batch.base, batch.base_phenotypes, batch.fit_shape)
