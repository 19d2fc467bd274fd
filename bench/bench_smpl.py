"""SMPL forward speed: pose_ros.core.body.Smpl vs smplx.SMPL on CPU, float32, batch 1 and 64 (medians).

Both layers are built from the same synthetic SMPL-format model (real array shapes; SMPL itself is licensed), run
under torch.inference_mode with the same inputs, checked to agree before timing, and timed alternately.

Usage (from the repository root): python -m bench.bench_smpl [--threads N] [--repeats R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch

from bench.fixtures.smpl_synthetic import make_synthetic_smpl
from pose_ros.core.body.smpl import Smpl
from pose_ros.core.body.smpl_files import SmplModelData, official_arrays


def build_smplx(data: SmplModelData) -> torch.nn.Module:
    """smplx.SMPL from the same arrays (passed as its data_struct, no file needed)."""
    import smplx
    from smplx.utils import Struct

    struct = Struct(**official_arrays(data))
    return smplx.SMPL(model_path="", data_struct=struct, create_transl=False, dtype=torch.float32)


def interleaved_times_ms(
    first: Callable[[], object], second: Callable[[], object], repeats: int, warmup: int = 5
) -> tuple[list[float], list[float]]:
    """Wall times (ms) of each callable, timed alternately so that load changes hit both alike."""
    for _ in range(warmup):
        first()
        second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, bucket in zip((first, second), times, strict=True):
            start = time.perf_counter()
            fn()
            bucket.append((time.perf_counter() - start) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls at batch 1 (batch 64: a tenth)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = make_synthetic_smpl(seed=0)
    ours, reference = Smpl(data), build_smplx(data)
    generator = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU, float32")
    print("| batch | pose_ros Smpl, median (ms) | smplx.SMPL, median (ms) | speed-up (medians) | speed-up (fastest) |")
    print("|---:|---:|---:|---:|---:|")
    for batch in (1, 64):
        betas = torch.randn(batch, 10, generator=generator)
        pose = 0.3 * torch.randn(batch, 72, generator=generator)
        with torch.inference_mode():
            mine = partial(ours, betas, pose)
            theirs = partial(reference, betas=betas, global_orient=pose[:, :3], body_pose=pose[:, 3:])
            error = (mine().vertices - theirs().vertices).abs().max().item()
            if error > 1e-4:
                raise RuntimeError(f"outputs disagree by {error:.2e} m at batch {batch}")
            repeats = max(args.repeats // (10 if batch > 1 else 1), 5)
            ours_ms, theirs_ms = interleaved_times_ms(mine, theirs, repeats)
        ours_median, theirs_median = statistics.median(ours_ms), statistics.median(theirs_ms)
        print(
            f"| {batch} | {ours_median:.3f} | {theirs_median:.3f} | {theirs_median / ours_median:.2f}× "
            f"| {min(theirs_ms) / min(ours_ms):.2f}× |"
        )
    print(f"load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
