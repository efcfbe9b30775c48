"""Artifacts: arrays and models saved under a directory, atomically, with a manifest.

Every artifact ``<name>`` is a data file (``<name>.npz`` for arrays, ``<name>.keras``
for models, ``<name>.data.json`` for JSON documents such as training histories)
plus a manifest ``<name>.json`` recording the parameters that produced it, the
seed, the library versions and the SHA-256 of the data file.

- Writes are atomic: each file is written to a temporary name in the same
  directory and renamed into place, data file first, manifest last. A run killed
  at any moment leaves either the previous artifact or the new one, never half of
  one; an artifact without a manifest does not exist.
- Reads verify: the data file's hash must match its manifest
  (:class:`CorruptArtifactError` otherwise), and when the caller gives the
  parameters it expects, they must match the recorded ones
  (:class:`StaleArtifactError` otherwise).
- Nothing is unpickled: arrays are read with ``allow_pickle=False``, object arrays
  are refused on write, and models load in Keras' safe mode.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = [
    "ArtifactError",
    "ArtifactNotFoundError",
    "CorruptArtifactError",
    "StaleArtifactError",
    "library_versions",
    "canonical_params",
    "file_sha256",
    "save_arrays",
    "load_arrays",
    "save_model",
    "load_model",
    "save_json",
    "load_json",
    "read_manifest",
    "names",
    "exists",
    "copy",
    "remove",
]

_SUFFIX = {"arrays": ".npz", "model": ".keras", "json": ".data.json"}
_LIBRARIES = (
    "introspection",
    "numpy",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "scikit-learn",
    "cleverhans",
)


class ArtifactError(Exception):
    """Base class of artifact problems."""


class ArtifactNotFoundError(ArtifactError, FileNotFoundError):
    """No complete artifact (data file and manifest) of that name exists."""


class CorruptArtifactError(ArtifactError):
    """The data file does not match the hash recorded in its manifest."""


class StaleArtifactError(ArtifactError):
    """The artifact was produced with other parameters than the ones expected."""


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape the results.

    Returns
    -------
    dict
        ``{"python": ..., "numpy": ..., "keras": ..., ...}``; libraries that are not
        installed are left out.
    """
    versions = {"python": platform.python_version()}
    for lib in _LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _to_jsonable(obj):
    if isinstance(obj, Mapping):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    raise TypeError(
        f"Cannot record a parameter of type {type(obj).__name__} in a manifest: {obj!r}"
    )


def canonical_params(params: Mapping | None) -> dict:
    """Parameters as plain JSON types (tuples become lists, numpy scalars Python ones).

    Parameters
    ----------
    params : mapping or None

    Returns
    -------
    dict
        A value that compares equal exactly when the JSON texts are equal.
    """
    return json.loads(json.dumps(_to_jsonable(dict(params or {})), sort_keys=True))


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes, as a hex string.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    str
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"Artifact names are non-empty file names without '/', got {name!r}.")
    return name


def _paths(root, name: str, kind: str) -> tuple[Path, Path]:
    root = Path(root)
    _check_name(name)
    return root / f"{name}{_SUFFIX[kind]}", root / f"{name}.json"


def _atomic_write(path: Path, write) -> None:
    """Write through ``write(tmp_path)`` then rename onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent
    )
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_manifest(root, name: str, kind: str, params, seed, extra: dict) -> dict:
    data_path, manifest_path = _paths(root, name, kind)
    manifest = {
        "name": name,
        "kind": kind,
        "file": data_path.name,
        "sha256": file_sha256(data_path),
        "bytes": data_path.stat().st_size,
        "params": canonical_params(params),
        "seed": seed,
        "versions": library_versions(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **extra,
    }
    text = json.dumps(manifest, indent=2, sort_keys=True)
    _atomic_write(manifest_path, lambda p: p.write_text(text))
    return manifest


def read_manifest(root, name: str) -> dict:
    """The manifest of an artifact.

    Parameters
    ----------
    root : str or path-like
        The artifacts directory.
    name : str
        The artifact's name.

    Returns
    -------
    dict

    Raises
    ------
    ArtifactNotFoundError
        If there is no manifest.
    CorruptArtifactError
        If the manifest is not valid JSON.
    """
    path = Path(root) / f"{_check_name(name)}.json"
    if not path.is_file():
        raise ArtifactNotFoundError(f"No artifact {name!r} in {root}.")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptArtifactError(f"Manifest {path} is not valid JSON ({err}).") from err
    if not isinstance(manifest, dict) or manifest.get("kind") not in _SUFFIX:
        raise CorruptArtifactError(f"Manifest {path} does not describe an artifact.")
    return manifest


def _verified(root, name: str, kind: str, params) -> tuple[Path, dict]:
    manifest = read_manifest(root, name)
    if manifest["kind"] != kind:
        raise ArtifactError(f"Artifact {name!r} holds {manifest['kind']}, not {kind}.")
    data_path, _ = _paths(root, name, kind)
    if not data_path.is_file():
        raise ArtifactNotFoundError(
            f"Artifact {name!r}: manifest found but {data_path} is missing."
        )
    digest = file_sha256(data_path)
    if digest != manifest.get("sha256"):
        raise CorruptArtifactError(
            f"Artifact {name!r}: {data_path} does not match its manifest (sha256 {digest[:12]}… "
            f"instead of {str(manifest.get('sha256'))[:12]}…); it was altered or truncated. "
            "Delete it to recompute it."
        )
    if params is not None:
        expected = canonical_params(params)
        if manifest.get("params") != expected:
            changed = sorted(
                k
                for k in set(expected) | set(manifest.get("params", {}))
                if expected.get(k) != manifest.get("params", {}).get(k)
            )
            raise StaleArtifactError(
                f"Artifact {name!r} was made with other parameters "
                f"(differing: {', '.join(changed)})."
            )
    return data_path, manifest


def names(root, pattern: str = "*") -> list[str]:
    """Names of the artifacts under ``root`` whose name matches a glob pattern.

    Parameters
    ----------
    root : str or path-like
        The artifacts directory.
    pattern : str
        ``fnmatch`` pattern on the artifact's name (e.g. ``"timing_evaluation__*"``).

    Returns
    -------
    list of str
        Sorted names of the artifacts that have a manifest (complete or not: use
        :func:`exists` to verify them).
    """
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(
        p.name[: -len(".json")]
        for p in root.glob(f"{pattern}.json")
        if not p.name.endswith(_SUFFIX["json"])
    )


def exists(root, name: str, params: Mapping | None = None) -> bool:
    """Whether a complete, uncorrupted artifact exists (with these parameters).

    Parameters
    ----------
    root : str or path-like
        The artifacts directory.
    name : str
        The artifact's name.
    params : mapping, optional
        When given, the recorded parameters must equal them.

    Returns
    -------
    bool
        False when it is missing, incomplete, corrupted or stale.
    """
    try:
        kind = read_manifest(root, name)["kind"]
        _verified(root, name, kind, params)
    except ArtifactError:
        return False
    return True


def save_arrays(
    root, name: str, arrays: Mapping[str, np.ndarray], *, params=None, seed=None
) -> dict:
    """Save named arrays as ``<root>/<name>.npz`` with a manifest, atomically.

    Parameters
    ----------
    root : str or path-like
        The artifacts directory (created if needed).
    name : str
        The artifact's name.
    arrays : mapping of str to ndarray
        Numeric or string arrays (object arrays are refused: they would need pickle).
    params : mapping, optional
        The parameters that produced the arrays, recorded in the manifest.
    seed : int, optional
        The seed, recorded in the manifest.

    Returns
    -------
    dict
        The manifest.
    """
    data = {}
    for key, value in arrays.items():
        a = np.asarray(value)
        if a.dtype == object:
            raise ValueError(f"Array {key!r} has dtype object; only plain arrays can be saved.")
        data[str(key)] = a
    data_path, _ = _paths(root, name, "arrays")

    def write(tmp: Path):
        with open(tmp, "wb") as f:
            np.savez(f, **data)

    _atomic_write(data_path, write)
    extra = {
        "arrays": {k: {"shape": list(a.shape), "dtype": str(a.dtype)} for k, a in data.items()}
    }
    return _write_manifest(root, name, "arrays", params, seed, extra)


def load_arrays(root, name: str, *, params: Mapping | None = None) -> dict[str, np.ndarray]:
    """Load arrays saved by :func:`save_arrays`, verifying hash and parameters.

    Parameters
    ----------
    root : str or path-like
        The artifacts directory.
    name : str
        The artifact's name.
    params : mapping, optional
        Expected parameters; a mismatch raises :class:`StaleArtifactError`.

    Returns
    -------
    dict of str to ndarray
    """
    data_path, _ = _verified(root, name, "arrays", params)
    with np.load(data_path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def save_model(root, name: str, model, *, params=None, seed=None) -> dict:
    """Save a Keras model as ``<root>/<name>.keras`` with a manifest, atomically.

    Parameters
    ----------
    root : str or path-like
        The artifacts directory.
    name : str
        The artifact's name.
    model : keras.Model
    params : mapping, optional
        Recorded in the manifest.
    seed : int, optional
        Recorded in the manifest.

    Returns
    -------
    dict
        The manifest.
    """
    from .models import save_model as _save

    data_path, _ = _paths(root, name, "model")
    _save(model, data_path)  # itself atomic
    return _write_manifest(root, name, "model", params, seed, {"model_name": model.name})


def load_model(root, name: str, *, params: Mapping | None = None, compile: bool = False):
    """Load a model saved by :func:`save_model`, verifying hash and parameters (safe mode).

    Parameters
    ----------
    root : str or path-like
        The artifacts directory.
    name : str
        The artifact's name.
    params : mapping, optional
        Expected parameters; a mismatch raises :class:`StaleArtifactError`.
    compile : bool
        Whether to restore the training configuration.

    Returns
    -------
    keras.Model
    """
    from .models import load_model as _load

    data_path, _ = _verified(root, name, "model", params)
    return _load(data_path, compile=compile)


def save_json(root, name: str, obj, *, params=None, seed=None) -> dict:
    """Save a JSON document (e.g. a training history) as an artifact.

    Parameters
    ----------
    root : str or path-like
        The artifacts directory.
    name : str
        The artifact's name.
    obj : JSON-serialisable
        Plain Python / numpy values.
    params : mapping, optional
        Recorded in the manifest.
    seed : int, optional
        Recorded in the manifest.

    Returns
    -------
    dict
        The manifest.
    """
    text = json.dumps(_to_jsonable(obj), indent=1, sort_keys=True)
    data_path, _ = _paths(root, name, "json")
    _atomic_write(data_path, lambda p: p.write_text(text))
    return _write_manifest(root, name, "json", params, seed, {})


def load_json(root, name: str, *, params: Mapping | None = None):
    """Load a JSON document saved by :func:`save_json`, verifying hash and parameters.

    Parameters
    ----------
    root : str or path-like
        The artifacts directory.
    name : str
        The artifact's name.
    params : mapping, optional
        Expected parameters.

    Returns
    -------
    object
    """
    data_path, _ = _verified(root, name, "json", params)
    return json.loads(data_path.read_text())


def copy(src_root, dst_root, name: str, *, params: Mapping | None = None) -> dict:
    """Copy a verified artifact byte for byte to another directory, atomically.

    The data file goes first and the manifest last, as :func:`save_model` writes
    them, so an interrupted copy leaves no artifact at the destination.

    Parameters
    ----------
    src_root, dst_root : str or path-like
        The artifacts directories.
    name : str
        The artifact's name.
    params : mapping, optional
        Expected parameters (:class:`StaleArtifactError` otherwise).

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    ArtifactNotFoundError, CorruptArtifactError, StaleArtifactError
        When the source is missing, does not match its hash or has other parameters.
    """
    import shutil

    kind = read_manifest(src_root, name)["kind"]
    data_src, manifest = _verified(src_root, name, kind, params)
    data_dst, manifest_dst = _paths(dst_root, name, kind)
    _atomic_write(data_dst, lambda p: shutil.copyfile(data_src, p))
    text = json.dumps(manifest, indent=2, sort_keys=True)
    _atomic_write(manifest_dst, lambda p: p.write_text(text))
    return manifest


def remove(root, name: str) -> None:
    """Delete an artifact: its manifest first (then it no longer exists), then its data.

    Parameters
    ----------
    root : str or path-like
        The artifacts directory.
    name : str
        The artifact's name; a missing artifact is not an error.
    """
    manifest_path = Path(root) / f"{_check_name(name)}.json"
    manifest_path.unlink(missing_ok=True)
    for suffix in _SUFFIX.values():
        (Path(root) / f"{name}{suffix}").unlink(missing_ok=True)
