"""The processor and schema ``coffea-sizing run`` is given: found, imported, checked.

Covers ``_load_processor`` (``MODULE:ATTR`` or ``PATH.py[:ATTR]``, a class built
without arguments or an instance; the module shipped to the workers by value) and
``_load_schema`` (a schema of :mod:`coffea.nanoevents`, ``QuietNanoAODSchema`` or
``MODULE:ATTR``); every mistake is one :class:`~coffea_sizing.cli.CLIError` naming
the spec and the fix. Not here: running it (``_cli_run``).
"""

from __future__ import annotations

import sys
from typing import Any

from ._cli_common import CLIError


def _user_module(spec: str) -> tuple[Any, str | None]:
    """The module ``spec`` names (``MODULE[:ATTR]`` or ``PATH.py[:ATTR]``)."""
    import importlib
    import importlib.util
    import pathlib

    target, _, attr = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if target.endswith(".py") or pathlib.Path(target).suffix == ".py":
        path = pathlib.Path(target)
        if not path.is_file():
            raise CLIError(f"{spec}: no such file: {target}")
        name = f"_coffea_sizing_user_{path.stem}"
        mod_spec = importlib.util.spec_from_file_location(name, path)
        if mod_spec is None or mod_spec.loader is None:
            raise CLIError(f"{spec}: {target} cannot be imported as a Python file")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module
        try:
            mod_spec.loader.exec_module(module)
        except (Exception, SystemExit) as err:
            sys.modules.pop(name, None)
            raise CLIError(
                f"{spec}: importing {target} failed: {_import_error(err)}"
            ) from err
        return module, attr or None
    if not target or not attr:
        raise CLIError(
            f"{spec}: give the processor as MODULE:ATTR (e.g. mypkg.analysis:"
            "MyProcessor) or PATH.py[:ATTR]"
        )
    if "" not in sys.path and str(pathlib.Path.cwd()) not in sys.path:
        sys.path.insert(0, str(pathlib.Path.cwd()))
    try:
        module = importlib.import_module(target)
    except (Exception, SystemExit) as err:
        raise CLIError(
            f"{spec}: module {target!r} does not import: {_import_error(err)}"
        ) from err
    return module, attr


def _import_error(err: BaseException) -> str:
    """One line for an exception raised while importing the user's module."""
    if isinstance(err, SystemExit):
        return (
            f"it calls sys.exit({err.code!r}) at import (move the script part "
            'under `if __name__ == "__main__":`)'
        )
    return f"{type(err).__name__}: {err}"


def _load_processor(spec: str) -> Any:
    """The processor instance ``spec`` names; its module travels by value."""
    import cloudpickle
    from coffea.processor import ProcessorABC

    module, attr = _user_module(spec)
    if attr is None:
        found = [
            name
            for name, obj in vars(module).items()
            if getattr(obj, "__module__", None) == module.__name__
            and (
                (isinstance(obj, type) and issubclass(obj, ProcessorABC))
                or isinstance(obj, ProcessorABC)
            )
        ]
        if len(found) != 1:
            raise CLIError(
                f"{spec}: name the processor as {spec}:ATTR ("
                + (f"it defines {', '.join(found)}" if found else "it defines none")
                + ")"
            )
        attr = found[0]
    try:
        obj = getattr(module, attr)
    except AttributeError as err:
        raise CLIError(
            f"{spec}: {module.__name__.removeprefix('_coffea_sizing_user_')!r} has "
            f"no attribute {attr!r}"
        ) from err
    if isinstance(obj, type) and issubclass(obj, ProcessorABC):
        try:
            obj = obj()
        except Exception as err:
            raise CLIError(
                f"{spec}: {attr}() failed ({type(err).__name__}: {err}); give an "
                "instance instead (processor = MyProcessor(...) in the module)"
            ) from err
    if not isinstance(obj, ProcessorABC):
        kind = "class" if isinstance(obj, type) else type(obj).__name__
        raise CLIError(
            f"{spec}: {attr} is a {kind}, not a coffea processor (a subclass or an "
            "instance of coffea.processor.ProcessorABC)"
        )
    # workers may not import the user's module: ship its code with the processor
    cloudpickle.register_pickle_by_value(module)
    return obj


def _load_schema(name: str) -> Any:
    import importlib

    from coffea import nanoevents

    if ":" in name:
        target, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(target), attr)
        except (ImportError, AttributeError) as err:
            raise CLIError(f"--schema {name}: {err}") from err
        except (Exception, SystemExit) as err:
            raise CLIError(f"--schema {name}: {_import_error(err)}") from err
    if name == "QuietNanoAODSchema":
        from .schemas import QuietNanoAODSchema

        return QuietNanoAODSchema
    schema = getattr(nanoevents, name, None)
    if not isinstance(schema, type):
        known = sorted(n for n in dir(nanoevents) if n.endswith("Schema"))
        raise CLIError(
            f"--schema {name}: not a schema of coffea.nanoevents (one of: "
            f"{', '.join(known)}; QuietNanoAODSchema; or MODULE:ATTR)"
        )
    return schema
