"""Model files that exist but cannot be used: each error names the file, says what is wrong and what to do, and
is one the nodes report without dying (a ValueError, in pose_node's MODEL_ERRORS)."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pose_ros.core.body.hmr import Hmr, load_mean_params, load_spin_checkpoint
from pose_ros.core.body.smpl_files import SMPL_SOURCE_URL, load_smpl_model
from pose_ros.core.model_files import ModelFileError
from pose_ros.ros.pose_node import MODEL_ERRORS


class RunsACommand:
    """A pickled object that would run a shell command when loaded by an unrestricted unpickler."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def small_checkpoint(path: Path, legacy: bool = False) -> bytes:
    state = {"model": {"fc1.weight": torch.arange(20000.0).reshape(200, 100), "fc1.bias": torch.ones(200)}}
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path.read_bytes()


def expect_model_file_error(load, path: Path, *words: str) -> str:
    with pytest.raises(ModelFileError) as raised:
        load(path)
    message = str(raised.value)
    assert str(path) in message, "the error names the file"
    assert isinstance(raised.value, MODEL_ERRORS), "pose_node reports it and keeps running"
    for word in words:
        assert word in message, (word, message)
    return message


def hmr_load(path: Path) -> None:
    load_spin_checkpoint(Hmr(), path)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.97])
def test_truncated_hmr_checkpoint(tmp_path, legacy, fraction) -> None:
    """Cut anywhere (zip: SPIN-era torch files are the legacy format, newer ones zip): "truncated", fetch again."""
    data = small_checkpoint(tmp_path / "full.pt", legacy)
    path = tmp_path / "model_checkpoint.pt"
    path.write_bytes(data[: int(len(data) * fraction)])
    expect_model_file_error(hmr_load, path, "HMR checkpoint", "truncated", "fetch it again", "github.com/nkolot/SPIN")


def test_hmr_checkpoint_of_another_kind(tmp_path) -> None:
    text = tmp_path / "model_checkpoint.pt"
    text.write_text("<html>404 Not Found</html>\n")  # what a failed download often leaves
    expect_model_file_error(hmr_load, text, "not a valid HMR checkpoint", "text starting '<html>", "nkolot/SPIN")
    jpeg = tmp_path / "photo.pt"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0" + bytes(2000))
    expect_model_file_error(hmr_load, jpeg, "not a valid HMR checkpoint", "bytes ffd8ffe0")
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], listed)
    expect_model_file_error(hmr_load, listed, "expected {'model': state_dict}", "got list")


def test_empty_hmr_checkpoint(tmp_path) -> None:
    path = tmp_path / "model_checkpoint.pt"
    path.write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"is empty: .*model_checkpoint\.pt.*SPIN"):
        hmr_load(path)


def test_hmr_checkpoint_with_a_forbidden_global_is_refused_without_running_it(tmp_path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "model_checkpoint.pt"
    torch.save({"model": RunsACommand(marker)}, path)
    message = expect_model_file_error(hmr_load, path, "refusing to load", "system", "original, unmodified file")
    assert "weights_only" not in message, "no advice to load it unsafely"
    assert not marker.exists(), "nothing in the file ran"


def smpl_like_pickle(path: Path) -> bytes:
    arrays = {"v_template": np.zeros((50, 3)), "f": np.arange(90, dtype=np.uint32).reshape(30, 3)}
    path.write_bytes(pickle.dumps(arrays, protocol=2))
    return path.read_bytes()


@pytest.mark.parametrize("fraction", [0.1, 0.6, 0.95])
def test_truncated_smpl_pickle(tmp_path, fraction) -> None:
    data = smpl_like_pickle(tmp_path / "full.pkl")
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(data[: int(len(data) * fraction)])
    expect_model_file_error(load_smpl_model, path, "SMPL model file", "truncated", "fetch it again", SMPL_SOURCE_URL)


def test_truncated_smpl_npz(tmp_path) -> None:
    full = tmp_path / "full.npz"
    np.savez(full, v_template=np.zeros((500, 3)), f=np.zeros((100, 3), np.int64))
    path = tmp_path / "SMPL_NEUTRAL.npz"
    path.write_bytes(full.read_bytes()[:2000])
    assert not zipfile.is_zipfile(path)
    expect_model_file_error(load_smpl_model, path, "truncated", "zip archive without its end", SMPL_SOURCE_URL)


def test_smpl_file_of_another_kind_or_empty(tmp_path) -> None:
    text = tmp_path / "SMPL_NEUTRAL.pkl"
    text.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 39001280\n")  # an LFS pointer
    expect_model_file_error(
        load_smpl_model, text, "not a valid SMPL model file", "text starting 'version", SMPL_SOURCE_URL
    )
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"is empty: .*empty\.pkl"):
        load_smpl_model(empty)
    not_a_dict = tmp_path / "list.pkl"
    not_a_dict.write_bytes(pickle.dumps([np.zeros(3)], protocol=2))
    expect_model_file_error(load_smpl_model, not_a_dict, "expected a pickled dict", "got list")


def test_smpl_pickle_with_a_forbidden_global_is_refused_without_running_it(tmp_path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"v_template": RunsACommand(marker)}, protocol=2))
    expect_model_file_error(load_smpl_model, path, "refusing to load", "system", "original, unmodified file")
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # still what callers of the pickle loader expect
        load_smpl_model(path)


def test_bad_mean_params_file(tmp_path) -> None:
    full = tmp_path / "full.npz"
    np.savez(full, pose=np.zeros(144), shape=np.zeros(10), cam=np.zeros(3))
    truncated = tmp_path / "smpl_mean_params.npz"
    truncated.write_bytes(full.read_bytes()[:300])
    expect_model_file_error(load_mean_params, truncated, "SMPL mean parameters file", "truncated", "nkolot/SPIN")
    text = tmp_path / "other.npz"
    text.write_text("not numbers")
    expect_model_file_error(load_mean_params, text, "not a valid SMPL mean parameters file")
