"""coffea filesets: every form ``Runner`` accepts, read into one, and checked early.

Covers reading a fileset (a mapping or a JSON file, in any of coffea's forms) into
one canonical form, and checking from file metadata alone, before any cluster starts,
that every file exists, is a ROOT file and holds its tree. Does not choose chunks
(:func:`coffea_sizing.predict.coffea_chunks`) or generate files
(:mod:`coffea_sizing.datasets`). Imports nothing else from the package.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["FilesetError", "check_files", "normalize_fileset"]

#: What a dataset entry may hold besides ``files`` (coffea's fileset keys).
_DATASET_KEYS = frozenset({"files", "treename", "metadata", "preload"})


class FilesetError(ValueError):
    """A fileset that is not in one of coffea's forms, or a file that cannot be read."""


def normalize_fileset(
    fileset: Any, treename: str | None = None
) -> dict[str, dict[str, Any]]:
    """``fileset`` in one form: ``{dataset: {"files": {path: tree}, ...}}``.

    Accepts every form coffea's ``Runner`` accepts: ``{dataset: [paths]}``,
    ``{dataset: {"files": [paths]}}``, ``{dataset: {"files": {path: tree}}}``, a
    per-dataset ``"treename"``, ``"metadata"`` and ``"preload"``, and a path to a
    JSON file holding any of these. A bare path string or a list of paths is also
    taken (one dataset per file stem).

    Parameters
    ----------
    fileset : mapping, str, path or list
        The fileset.
    treename : str, optional
        The tree of files whose tree the fileset does not name (as ``Runner``'s
        ``treename``).

    Returns
    -------
    dict
        ``{dataset: {"files": {path: tree}}}``, plus ``"metadata"`` and
        ``"preload"`` where the dataset had them.

    Raises
    ------
    FilesetError
        Naming the dataset and what is wrong, e.g. a file without a tree name.

    Examples
    --------
    >>> from coffea_sizing.filesets import normalize_fileset
    >>> normalize_fileset({"tt": ["a.root", "b.root"]}, "Events")
    {'tt': {'files': {'a.root': 'Events', 'b.root': 'Events'}}}
    >>> normalize_fileset({"tt": {"files": {"a.root": "Events"}, "metadata": {"xs": 1}}})
    {'tt': {'files': {'a.root': 'Events'}, 'metadata': {'xs': 1}}}
    >>> normalize_fileset({"tt": {"files": ["a.root"], "treename": "Events"}})
    {'tt': {'files': {'a.root': 'Events'}}}
    >>> normalize_fileset({"tt": ["a.root"]})
    Traceback (most recent call last):
    ...
    coffea_sizing.filesets.FilesetError: dataset 'tt': file 'a.root' has no tree name; give treename (or the fileset form {"files": {path: tree}})
    """
    if isinstance(fileset, str | os.PathLike) and not isinstance(fileset, Mapping):
        path = Path(fileset)
        fileset = _read_json(path) if path.suffix.lower() == ".json" else [str(fileset)]
    if isinstance(fileset, list | tuple):
        by_stem: dict[str, list[str]] = {}
        for name in fileset:
            by_stem.setdefault(Path(str(name)).stem, []).append(str(name))
        fileset = by_stem
    if not isinstance(fileset, Mapping):
        raise FilesetError(
            f"a fileset is a mapping {{dataset: files}} or a JSON file of one, got "
            f"{type(fileset).__name__}"
        )
    if not fileset:
        raise FilesetError("the fileset is empty: it names no dataset")
    out: dict[str, dict[str, Any]] = {}
    for dataset, entry in fileset.items():
        out[str(dataset)] = _dataset(str(dataset), entry, treename)
    return out


def _dataset(dataset: str, entry: Any, treename: str | None) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    tree = treename
    files: Any = entry
    if isinstance(entry, Mapping):
        unknown = sorted(set(map(str, entry)) - _DATASET_KEYS)
        if "files" not in entry:
            raise FilesetError(
                f"dataset {dataset!r}: a dataset given as a mapping needs a 'files' "
                f"entry (it has {sorted(map(str, entry))})"
            )
        if unknown:
            raise FilesetError(
                f"dataset {dataset!r}: unknown key(s) {unknown}; coffea's fileset "
                f"keys are {sorted(_DATASET_KEYS)}"
            )
        tree = entry.get("treename", treename)
        files = entry["files"]
        if entry.get("metadata") is not None:
            if not isinstance(entry["metadata"], Mapping):
                raise FilesetError(f"dataset {dataset!r}: 'metadata' must be a mapping")
            extra["metadata"] = dict(entry["metadata"])
        if entry.get("preload") is not None:
            extra["preload"] = list(entry["preload"])
    if isinstance(files, str | os.PathLike):
        files = [files]
    resolved: dict[str, str] = {}
    if isinstance(files, Mapping):
        for name, file_tree in files.items():
            t = file_tree if file_tree is not None else tree
            if isinstance(t, Mapping):  # coffea's {"object_path": ...} form
                t = t.get("object_path", t.get("treename", tree))
            resolved[str(name)] = _tree_name(dataset, str(name), t)
    elif isinstance(files, list | tuple):
        for name in files:
            resolved[str(name)] = _tree_name(dataset, str(name), tree)
    else:
        raise FilesetError(
            f"dataset {dataset!r}: files must be a list of paths or a mapping "
            f"{{path: tree}}, got {type(files).__name__}"
        )
    if not resolved:
        raise FilesetError(f"dataset {dataset!r} has no files")
    return {"files": resolved, **extra}


def _tree_name(dataset: str, name: str, tree: Any) -> str:
    if not isinstance(tree, str) or not tree:
        raise FilesetError(
            f"dataset {dataset!r}: file {name!r} has no tree name; give treename (or "
            'the fileset form {"files": {path: tree}})'
        )
    return tree


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as err:
        raise FilesetError(f"cannot read the fileset {path}: {err.strerror}") from err
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise FilesetError(
            f"{path}: not JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from err


def check_files(fileset: Mapping[str, Mapping[str, Any]]) -> None:
    """Check from metadata alone that every file opens and holds its tree.

    Meant to run before a cluster starts: a missing file, a file that is not ROOT,
    or a wrong tree name is reported in one line, in well under a second per file.
    Remote files (``root://``, ``https://``) are not checked.

    Parameters
    ----------
    fileset : mapping
        A fileset in the form :func:`normalize_fileset` returns.

    Raises
    ------
    FilesetError
        Naming the file and what is wrong with it (and the trees it has).

    Examples
    --------
    >>> from coffea_sizing.datasets import ttbar_path
    >>> from coffea_sizing.filesets import check_files, normalize_fileset
    >>> check_files(normalize_fileset({"tt": [ttbar_path()]}, "Events"))
    >>> check_files(normalize_fileset({"tt": [ttbar_path()]}, "Runs"))
    Traceback (most recent call last):
    ...
    coffea_sizing.filesets.FilesetError: .../nanoAOD_2015_CMS_Open_Data_ttbar.root: no tree 'Runs' (it holds: Events)
    >>> check_files(normalize_fileset({"x": ["no/such.root"]}, "Events"))
    Traceback (most recent call last):
    ...
    coffea_sizing.filesets.FilesetError: no such file: no/such.root (dataset 'x')
    """
    for dataset, entry in fileset.items():
        for name, tree in entry["files"].items():
            if "://" in name and not name.startswith("file://"):
                continue
            _check_file(dataset, name, tree)


def _check_file(dataset: str, name: str, tree: str) -> None:
    import uproot

    path = Path(name.removeprefix("file://"))
    if not path.is_file():
        raise FilesetError(f"no such file: {name} (dataset {dataset!r})")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"root":
        kind = "a Parquet file" if magic == b"PAR1" else "not a ROOT file"
        raise FilesetError(f"{name}: {kind} (dataset {dataset!r})")
    try:
        with uproot.open(str(path)) as f:
            classes = f.classnames(recursive=False)
            names = {k.split(";")[0]: c for k, c in classes.items()}
            if tree in names:
                return
            trees = sorted(
                k
                for k, c in names.items()
                if c in {"TTree", "TNtuple"} or "RNTuple" in c
            )
    except Exception as err:  # uproot's own errors carry internals: say it plainly
        raise FilesetError(
            f"{name}: cannot be read as a ROOT file ({type(err).__name__})"
        ) from err
    raise FilesetError(
        f"{name}: no tree {tree!r} (it holds: {', '.join(trees) or 'none'})"
    )
