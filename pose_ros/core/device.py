"""Torch device selection, resolved once per model."""

from __future__ import annotations

import re

import torch

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(spec: str) -> torch.device:
    """Map a device parameter ("auto", "cpu", "cuda", "cuda:N") to a torch.device.

    "auto" is CUDA device 0 when a GPU is present, else the CPU.
    Raises ValueError for a malformed spec or a CUDA device that is not present.
    """
    spec = spec.strip().lower()
    if not DEVICE_PATTERN.match(spec):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} requested but torch sees no CUDA GPU")
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {spec!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return torch.device(spec)
