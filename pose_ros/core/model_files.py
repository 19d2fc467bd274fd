"""Errors for model files that exist but cannot be used, naming the file, what is wrong and what to do.

`ModelFileError` is a ValueError (the nodes report it and keep running) and a pickle.UnpicklingError (what a
refused pickle raised before). `explain_load_failure` turns whatever a loader raised (torch.load, pickle, numpy,
zipfile) into one, after looking at the file itself: an empty file, a zip archive cut short (torch checkpoints and
.npz files are zip archives), a pickle that ends early, a refused global, or data of another kind.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

ZIP_SIGNATURE = b"PK\x03\x04"
PICKLE_PROTOCOL_MARK = b"\x80"
_TRUNCATED_WORDS = ("ran out of input", "pickle data was truncated", "truncated", "unexpected end", "eof")
_REFUSED_GLOBAL = re.compile(r"(?:GLOBAL|refusing to load)\s*'?([A-Za-z_][\w.]*)")


class ModelFileError(ValueError, pickle.UnpicklingError):
    """A model file that exists but cannot be used (truncated, not the expected kind, or refused as unsafe)."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _refused_global(message: str) -> str | None:
    """The `module.name` a safe loader refused, if `message` is such a refusal."""
    lowered = message.lower()
    if "unsupported global" not in lowered and "refusing to load" not in lowered:
        return None
    match = _REFUSED_GLOBAL.search(message.split("Unsupported global:", 1)[-1])
    return match.group(1).replace(" ", ".") if match else "an object"


def explain_load_failure(path: str | Path, what: str, hint: str, error: BaseException) -> ModelFileError:
    """A ModelFileError for `error`, raised while loading `path` (a `what`, e.g. "HMR checkpoint"); `hint` says
    where the right file comes from. Call as `raise explain_load_failure(...) from error`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as file:
            head = file.read(8)
    except OSError:
        size, head = -1, b""
    message = str(error)
    refused = _refused_global(message)
    if size == 0:
        reason = "the file is empty (an interrupted download or copy); fetch it again"
    elif refused is not None and refused.startswith("torch."):  # torch's own names are allowed: a name cut short
        reason = f"the file is truncated or damaged ({size} bytes; it names {refused}, a cut-off torch name)"
        reason += ": fetch it again"
    elif refused is not None:
        reason = (
            f"refusing to load '{refused}': a model file may hold only tensors and arrays, and this could run code "
            f"when loaded; use the original, unmodified file"
        )
    elif head.startswith(ZIP_SIGNATURE) and not zipfile.is_zipfile(path):
        reason = (
            f"the file is truncated ({size} bytes, a zip archive without its end): the download or copy was cut "
            f"short; fetch it again"
        )
    elif isinstance(error, EOFError) or any(word in message.lower() for word in _TRUNCATED_WORDS):
        reason = f"the file is truncated ({size} bytes; the data ends early): fetch it again"
    else:
        if head.startswith(ZIP_SIGNATURE):
            kind = "a zip archive"
        elif head.startswith(PICKLE_PROTOCOL_MARK):
            kind = "a pickle"
        elif head and all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head):
            kind = f"text starting {head.decode('ascii')!r}"
        else:
            kind = f"data starting with bytes {head[:4].hex()}"
        reason = f"this is not a valid {what} ({kind} that does not load: {_first_line(error)})"
    return ModelFileError(f"{what} {path} cannot be used: {reason}. {hint}")
