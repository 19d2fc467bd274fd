"""SMPL files: chumpy-format pickles without chumpy, .npz (dense or sparse regressor), refusal of foreign code."""

from __future__ import annotations

import os
import pickle
import sys
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from bench.fixtures.smpl_synthetic import make_synthetic_smpl
from pose_ros.core.body.smpl_files import SMPL_SOURCE_URL, SmplModelData, load_smpl_model, save_smpl_npz


@pytest.fixture(scope="module")
def model_data() -> SmplModelData:
    return make_synthetic_smpl(seed=3)


def _official_dict(data: SmplModelData, wrap: Callable[[np.ndarray], object]) -> dict:
    """The official file's layout: chumpy arrays, a CSC regressor, a uint32 kintree with 2³²-1 for the root."""
    kintree = np.stack([data.parents, np.arange(data.num_joints)]).astype(np.int64)
    kintree[0, 0] = 2**32 - 1
    return {
        "v_template": wrap(data.v_template),
        "shapedirs": wrap(data.shapedirs),
        "posedirs": data.posedirs,
        "J_regressor": scipy.sparse.csc_matrix(data.j_regressor),
        "J_regressor_prior": scipy.sparse.csc_matrix(data.j_regressor),
        "weights": wrap(data.weights),
        "weights_prior": data.weights,
        "kintree_table": kintree.astype(np.uint32),
        "f": data.faces.astype(np.uint32),
        "J": wrap(data.j_regressor @ data.v_template),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


class _Python2StylePickler(pickle.Pickler):
    """Writes numpy array data as text strings, as Python 2 did (read back with encoding="latin1")."""

    def reducer_override(self, obj: object) -> object:
        if type(obj) is np.ndarray and not obj.dtype.hasobject:
            function, arguments, state = obj.__reduce__()
            return function, arguments, (*state[:4], state[4].decode("latin1"))
        return NotImplemented


def _write_chumpy_pickle(
    data: SmplModelData, path: Path, protocol: int, python2_strings: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pickle objects whose class is `chumpy.ch.Ch` (as in the official files) from a throw-away module."""
    chumpy = types.ModuleType("chumpy")
    chumpy_ch = types.ModuleType("chumpy.ch")

    class Ch:  # the pickled state of a real chumpy leaf: its value 'x' plus bookkeeping attributes
        def __init__(self, value: np.ndarray) -> None:
            self.x = value
            self._dirty_vars = {"x"}
            self._itr = None
            self._depends_on_deps: dict = {}
            self._make_dense = False
            self._make_sparse = False

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    chumpy_ch.Ch = Ch
    chumpy.ch = chumpy_ch
    monkeypatch.setitem(sys.modules, "chumpy", chumpy)
    monkeypatch.setitem(sys.modules, "chumpy.ch", chumpy_ch)
    with open(path, "wb") as file:
        pickler = _Python2StylePickler if python2_strings else pickle.Pickler
        pickler(file, protocol=protocol).dump(_official_dict(data, Ch))
    monkeypatch.delitem(sys.modules, "chumpy")
    monkeypatch.delitem(sys.modules, "chumpy.ch")


def _assert_same(loaded: SmplModelData, expected: SmplModelData) -> None:
    for name in ("v_template", "shapedirs", "posedirs", "j_regressor", "weights", "parents", "faces"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(expected, name), err_msg=name)


@pytest.mark.parametrize(("protocol", "python2_strings"), [(1, False), (2, False), (2, True)])
def test_loads_chumpy_pickle_without_chumpy(
    model_data: SmplModelData, tmp_path: Path, protocol: int, python2_strings: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    _write_chumpy_pickle(model_data, path, protocol, python2_strings, monkeypatch)
    assert b"chumpy.ch" in path.read_bytes()
    assert "chumpy" not in sys.modules
    _assert_same(load_smpl_model(path), model_data)


def test_loads_npz_dense_and_sparse_regressor(model_data: SmplModelData, tmp_path: Path) -> None:
    dense = tmp_path / "SMPL_NEUTRAL.npz"
    save_smpl_npz(model_data, dense)
    _assert_same(load_smpl_model(dense), model_data)
    sparse = tmp_path / "smpl_sparse.npz"
    np.savez(sparse, **_official_dict(model_data, lambda array: array))  # J_regressor: a pickled object array
    _assert_same(load_smpl_model(sparse), model_data)


class _RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return (os.system, (self.command,))


def test_refuses_pickles_that_reference_other_code(model_data: SmplModelData, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"v_template": _RunsShell(f"touch {marker}")}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load '(posix|os)\.system'"):
        load_smpl_model(evil)
    assert not marker.exists()
    odd = tmp_path / "odd.pkl"
    odd.write_bytes(pickle.dumps({"f": types.SimpleNamespace(a=1)}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"types\.SimpleNamespace"):
        load_smpl_model(odd)
    evil_npz = tmp_path / "evil.npz"
    np.savez(evil_npz, J_regressor=np.array(_RunsShell(f"touch {marker}"), dtype=object))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_smpl_model(evil_npz)
    assert not marker.exists()


def test_missing_file_names_it_and_the_source(tmp_path: Path) -> None:
    missing = tmp_path / "SMPL_NEUTRAL.pkl"
    with pytest.raises(FileNotFoundError) as error:
        load_smpl_model(missing)
    assert str(missing) in str(error.value) and SMPL_SOURCE_URL in str(error.value)


def test_wrong_shapes_are_reported(model_data: SmplModelData, tmp_path: Path) -> None:
    arrays = _official_dict(model_data, lambda array: array)
    arrays["weights"] = model_data.weights[:, :23]
    path = tmp_path / "broken.npz"
    arrays["J_regressor"] = model_data.j_regressor
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"weights has shape \(6890, 23\)"):
        load_smpl_model(path)
    with pytest.raises(ValueError, match="missing keys"):
        SmplModelData.from_arrays({"v_template": model_data.v_template})
