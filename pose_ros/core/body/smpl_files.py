"""SMPL model files: the official chumpy pickles and .npz files, loaded without chumpy and without arbitrary code.

The official SMPL files (`basicModel_neutral_lbs_10_207_0_v1.0.0.pkl`, `SMPL_NEUTRAL.pkl`, ...) are Python 2 pickles
whose arrays are partly `chumpy.ch.Ch` objects and whose joint regressor is a `scipy.sparse.csc_matrix`. chumpy does
not install on NumPy ≥ 1.24, and a plain `pickle.load` would run whatever the file names. `load_smpl_model` instead
reads them with an allow-list unpickler: chumpy arrays become numpy arrays, sparse matrices are rebuilt from their
parts, and any other class or function (e.g. `os.system`) is refused with `pickle.UnpicklingError`.

SMPL is licensed by the Max Planck Institute for Intelligent Systems and is never shipped with pose_ros; users
download it from https://smpl.is.tue.mpg.de/ after accepting the license.
"""

from __future__ import annotations

import copyreg
import importlib
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import scipy.sparse

from pose_ros.core.assets import require_file
from pose_ros.core.model_files import ModelFileError, explain_load_failure

SMPL_SOURCE_URL = "https://smpl.is.tue.mpg.de/"
SMPL_FILE_HINT = (
    f"SMPL is licensed and not shipped with pose_ros: register at {SMPL_SOURCE_URL} and download the model "
    "(e.g. basicModel_neutral_lbs_10_207_0_v1.0.0.pkl, or SMPL_NEUTRAL.pkl as used by SPIN), then pass its path"
)
REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


@dataclass(frozen=True)
class SmplModelData:
    """The arrays that define an SMPL-format body model (float64 / int64 numpy).

    Attributes:
        v_template: (V, 3) rest-pose template vertices, metres.
        shapedirs: (V, 3, S) shape blendshapes (PCA directions), metres per unit β.
        posedirs: (V, 3, 9 (J - 1)) pose blendshapes, metres per unit of (R - I) entries of joints 1..J-1.
        j_regressor: (J, V) dense joint regressor (rows sum to 1 in the official files).
        weights: (V, J) linear-blend-skinning weights (rows sum to 1).
        parents: (J,) parent joint index, -1 for the root; parents[j] < j.
        faces: (F, 3) triangle vertex indices, counter-clockwise seen from outside.
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    j_regressor: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    faces: np.ndarray

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.parents.shape[0])

    @property
    def num_betas(self) -> int:
        return int(self.shapedirs.shape[2])

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any], source: str = "arrays") -> SmplModelData:
        """Build from a mapping with the official keys (`v_template`, `shapedirs`, `posedirs`, `J_regressor` dense
        or scipy.sparse, `weights`, `kintree_table` (2, J), `f`); extra keys are ignored. Validates all shapes."""
        missing = [key for key in REQUIRED_KEYS if key not in arrays]
        if missing:
            raise ValueError(f"{source}: not an SMPL model, missing keys {missing} (expected {list(REQUIRED_KEYS)})")
        regressor = arrays["J_regressor"]
        regressor = regressor.toarray() if scipy.sparse.issparse(regressor) else regressor
        data = cls(
            v_template=np.asarray(arrays["v_template"], np.float64),
            shapedirs=np.asarray(arrays["shapedirs"], np.float64),
            posedirs=np.asarray(arrays["posedirs"], np.float64),
            j_regressor=np.asarray(regressor, np.float64),
            weights=np.asarray(arrays["weights"], np.float64),
            parents=parents_from_kintree(np.asarray(arrays["kintree_table"])),
            faces=np.asarray(arrays["f"]).astype(np.int64),
        )
        data.validate(source)
        return data

    def validate(self, source: str = "SMPL model") -> None:
        """Raise ValueError naming `source` when an array's shape disagrees with the others."""
        V, J = self.num_vertices, self.num_joints
        expected = {
            "v_template": (self.v_template.shape, (V, 3)),
            "shapedirs": (self.shapedirs.shape[:2], (V, 3)),
            "posedirs": (self.posedirs.shape, (V, 3, 9 * (J - 1))),
            "J_regressor": (self.j_regressor.shape, (J, V)),
            "weights": (self.weights.shape, (V, J)),
            "f": (self.faces.shape[1:], (3,)),
        }
        for key, (got, want) in expected.items():
            if tuple(got) != want:
                raise ValueError(f"{source}: {key} has shape {tuple(got)}, expected {want}")
        if self.shapedirs.ndim != 3:
            raise ValueError(f"{source}: shapedirs must be (V, 3, S), got {self.shapedirs.shape}")
        if self.faces.size and (self.faces.min() < 0 or self.faces.max() >= V):
            raise ValueError(f"{source}: face indices outside [0, {V})")


def parents_from_kintree(kintree_table: np.ndarray) -> np.ndarray:
    """SMPL `kintree_table` (2, J) — row 0 parent ids (root: -1 or 2³²-1), row 1 joint ids — → parents (J,) int64.

    Raises ValueError unless it is a tree with a single root whose parents precede their children.
    """
    if kintree_table.ndim != 2 or kintree_table.shape[0] != 2:
        raise ValueError(f"kintree_table must be (2, J), got {kintree_table.shape}")
    table = kintree_table.astype(np.int64)
    num_joints = table.shape[1]
    parents = np.full(num_joints, -2, np.int64)
    if sorted(table[1].tolist()) != list(range(num_joints)):
        raise ValueError("kintree_table row 1 must list each joint id 0..J-1 once")
    parents[table[1]] = table[0]
    parents[(parents < 0) | (parents >= num_joints)] = -1
    roots = np.flatnonzero(parents == -1)
    if roots.tolist() != [0] or np.any(parents[1:] >= np.arange(1, num_joints)):
        raise ValueError("kintree_table must describe a tree rooted at joint 0 with parents before children")
    return parents


def load_smpl_model(path: str | Path) -> SmplModelData:
    """Load an SMPL-format model from an official `.pkl` (chumpy not needed) or an `.npz` with the same keys.

    Raises FileNotFoundError (naming the file and where SMPL comes from), pickle.UnpicklingError when the file
    references anything but numpy/scipy.sparse/chumpy arrays, ValueError when keys or shapes are wrong.
    """
    path = require_file(path, "SMPL model file", SMPL_FILE_HINT)
    try:
        if zipfile.is_zipfile(path):
            arrays = read_npz_safely(path)
        else:
            with open(path, "rb") as file:
                arrays = _unwrap(RestrictedUnpickler(file, source=str(path)).load())
    except Exception as error:  # EOFError/UnpicklingError (truncated, refused, not a pickle), BadZipFile, ...
        raise explain_load_failure(path, "SMPL model file", SMPL_FILE_HINT, error) from error
    if not isinstance(arrays, dict):
        raise ModelFileError(
            f"SMPL model file {path} cannot be used: expected a pickled dict of SMPL arrays, got "
            f"{type(arrays).__name__}. {SMPL_FILE_HINT}"
        )
    return SmplModelData.from_arrays(arrays, source=str(path))


def save_smpl_npz(data: SmplModelData, path: str | Path) -> None:
    """Write `data` as a plain, pickle-free .npz with the official keys (loads with `load_smpl_model`)."""
    np.savez(path, **official_arrays(data))


def official_arrays(data: SmplModelData) -> dict[str, np.ndarray]:
    """`data` under the official SMPL file keys (v_template, shapedirs, posedirs, J_regressor, weights,
    kintree_table (2, 24) int64, f), e.g. for .npz files or smplx's `Struct`."""
    return {
        "v_template": data.v_template,
        "shapedirs": data.shapedirs,
        "posedirs": data.posedirs,
        "J_regressor": data.j_regressor,
        "weights": data.weights,
        "kintree_table": np.stack([data.parents, np.arange(data.num_joints)]).astype(np.int64),
        "f": data.faces,
    }


def read_npz_safely(path: str | Path) -> dict[str, Any]:
    """Read every array of an .npz; object arrays (e.g. a pickled scipy.sparse J_regressor) go through
    `RestrictedUnpickler` instead of numpy's unrestricted `allow_pickle=True`."""
    arrays: dict[str, Any] = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not member.endswith(".npy"):
                continue
            key = member[: -len(".npy")]
            with archive.open(member) as file:
                major, _ = np.lib.format.read_magic(file)
                header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                _, _, dtype = header(file)
                if dtype.hasobject:
                    arrays[key] = _unwrap(RestrictedUnpickler(file, source=f"{path}:{key}").load())
                    continue
            with archive.open(member) as file:
                arrays[key] = np.lib.format.read_array(file, allow_pickle=False)
    return arrays


class _ChumpyArray:
    """Stand-in for `chumpy.ch.Ch` while unpickling: keeps only its value `x`."""

    value: np.ndarray

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or "x" not in state:
            raise pickle.UnpicklingError("chumpy object without an 'x' array: not a plain chumpy.ch.Ch")
        self.value = np.asarray(state["x"])


class _SparseMatrix:
    """Stand-in for a pickled scipy.sparse CSC/CSR matrix: keeps its parts, rebuilt by `to_scipy`."""

    sparse_format = ""
    state: dict

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not {"data", "indices", "indptr"} <= state.keys():
            raise pickle.UnpicklingError(f"{self.sparse_format} matrix state without data/indices/indptr")
        self.state = state

    def to_scipy(self) -> scipy.sparse.spmatrix:
        shape = tuple(self.state.get("_shape", self.state.get("shape")))
        parts = (np.asarray(self.state["data"]), np.asarray(self.state["indices"]), np.asarray(self.state["indptr"]))
        matrix_class = scipy.sparse.csc_matrix if self.sparse_format == "csc" else scipy.sparse.csr_matrix
        return matrix_class(parts, shape=shape)


class _CscMatrix(_SparseMatrix):
    sparse_format = "csc"


class _CsrMatrix(_SparseMatrix):
    sparse_format = "csr"


def _numpy_multiarray() -> Any:
    try:
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:  # NumPy 1.x
        return importlib.import_module("numpy.core.multiarray")


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What Python 3 pickles of protocol < 3 call (as `_codecs.encode`) to rebuild bytes; only latin-1 is allowed."""
    if encoding.replace("-", "").replace("_", "").lower() != "latin1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    multiarray = _numpy_multiarray()
    allowed: dict[tuple[str, str], Any] = {
        ("chumpy.ch", "Ch"): _ChumpyArray,
        ("chumpy", "Ch"): _ChumpyArray,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("copy_reg", "_reconstructor"): copyreg._reconstructor,
        ("copyreg", "_reconstructor"): copyreg._reconstructor,
        ("__builtin__", "object"): object,
        ("builtins", "object"): object,
        ("__builtin__", "set"): set,  # chumpy's bookkeeping (`_dirty_vars`) is a set
        ("builtins", "set"): set,
        ("_codecs", "encode"): _latin1_bytes,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    for module in ("scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse"):
        allowed[(module, "csc_matrix")] = _CscMatrix
    for module in ("scipy.sparse.csr", "scipy.sparse._csr", "scipy.sparse"):
        allowed[(module, "csr_matrix")] = _CsrMatrix
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy arrays/dtypes/scalars, scipy CSC/CSR matrices and chumpy `Ch` arrays.

    Any other global (a class or a function such as `os.system`) raises pickle.UnpicklingError naming it and the
    file, before anything is called. Python 2 pickles are read with encoding="latin1".
    """

    def __init__(self, file: IO[bytes], source: str = "pickle") -> None:
        super().__init__(file, encoding="latin1")
        self.source = source
        self.allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"{self.source}: refusing to load '{module}.{name}' — an SMPL model file may only hold numpy, "
                "scipy.sparse and chumpy arrays"
            ) from None


def _unwrap(value: Any) -> Any:
    """Replace chumpy/sparse stand-ins (also inside dicts, lists and 0-d object arrays) with numpy/scipy objects."""
    if isinstance(value, _ChumpyArray):
        return value.value
    if isinstance(value, _SparseMatrix):
        return value.to_scipy()
    if isinstance(value, dict):
        return {key: _unwrap(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_unwrap(item) for item in value)
    if isinstance(value, np.ndarray) and value.dtype.hasobject:
        if value.ndim == 0:
            return _unwrap(value.item())
        return np.array([_unwrap(item) for item in value.ravel()], dtype=object).reshape(value.shape)
    return value
