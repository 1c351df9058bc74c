"""Workloads by name, by file, by module: what ``shmkernel run|explore|replay|sweep`` take.

- a **name**: the seeds' scenarios shipped in ``workloads/`` (``refcount``,
  ``rmmod`` ...), then those an installed package adds through the
  ``shmkernel.workloads`` entry-point group (``name = "package.module:OBJECT"``);
- a **file**: ``path/to/race.py`` or ``path/to/race.py:NAME``;
- a **module**: ``package.module:NAME``.

In a file or module, ``NAME`` is an attribute holding a `Workload` (or a
scenario: anything with an ``as_workload()``); without one, the module's
``WORKLOAD``, else its only workload. A file is imported once per process
under a module name of its own, before any CPU process is forked, so the
CPUs find its program functions by reference. Whatever cannot be loaded is a
one-line `UsageError` (exit 2). The loaded workload's ``source`` is the
reference it was loaded by: what a replay hint must print to load it again.

The bundled package is imported by name when first needed, not at import
time: ``workloads/`` sits on top of the kernel layer, and nothing in
``shmkernel`` depends on it (tests/test_layers.py).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from shmkernel.errors import UsageError
from shmkernel.workload import Workload

BUNDLED = "workloads"
GROUP = "shmkernel.workloads"


def _bundled() -> Any:
    return importlib.import_module(BUNDLED)


def _plugins() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def names() -> list[str]:
    bundled = list(_bundled().REGISTRY)
    return [*bundled, *(n for n in _plugins() if n not in bundled)]


def is_reference(ref: str) -> bool:
    """A file or module reference rather than a registered name?"""
    return ":" in ref or ref.endswith(".py") or os.sep in ref


def get(ref: str) -> Workload:
    """The workload ``ref`` names (a registered name, a file or a module reference)."""
    bundled = _bundled()
    if ref in bundled.REGISTRY:
        return bundled.get(ref)
    if is_reference(ref):
        return _loaded(ref)
    ep = _plugins().get(ref)
    if ep is None:
        raise UsageError(
            f"unknown workload {ref!r}; choose one of {', '.join(names())}, "
            f"or give a file (path/to/race.py[:NAME]) or a module (package.module:NAME)"
        )
    try:
        obj = ep.load()
    except Exception as e:  # noqa: BLE001 - someone else's package: one line, whatever it raised
        raise UsageError(f"workload {ref!r} ({ep.value}) failed to load: {type(e).__name__}: {e}") from None
    return _as_workload(obj, f"entry point {ref!r} ({ep.value})", ref)


def all_workloads() -> list[Workload]:
    return [get(n) for n in names()]


def _loaded(ref: str) -> Workload:
    target, name = _split(ref)
    if target.endswith(".py") or os.sep in target:
        module = _import_file(target)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise UsageError(f"workload {ref!r}: cannot import {target!r}: {e}") from None
        except Exception as e:  # noqa: BLE001
            raise UsageError(f"workload {ref!r}: importing {target!r} raised {type(e).__name__}: {e}") from None
    return _as_workload(_pick(module, name, ref), f"{ref!r}", ref)


def _split(ref: str) -> tuple[str, str | None]:
    """``path.py:NAME`` / ``pkg.mod:NAME`` -> (target, NAME); a bare file -> (file, None)."""
    head, sep, tail = ref.rpartition(":")
    if sep and tail.isidentifier():
        return head, tail
    return ref, None


def _import_file(path: str) -> ModuleType:
    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise UsageError(f"no workload file {path!r}")
    modname = (
        "shmkernel_user_"
        + os.path.splitext(os.path.basename(full))[0].replace("-", "_")
        + "_"
        + hashlib.sha1(full.encode()).hexdigest()[:8]
    )
    if modname in sys.modules:
        return sys.modules[modname]
    spec = importlib.util.spec_from_file_location(modname, full)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module  # before running it: its functions pickle by this name
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        del sys.modules[modname]
        raise UsageError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    except Exception as e:  # noqa: BLE001 - the user's file: one line, whatever it raised
        del sys.modules[modname]
        raise UsageError(f"{path}: importing it raised {type(e).__name__}: {e}") from None
    return module


def _pick(module: ModuleType, name: str | None, ref: str) -> Any:
    if name is not None:
        if not hasattr(module, name):
            raise UsageError(f"workload {ref!r}: {module.__name__} has no {name!r}")
        return getattr(module, name)
    if hasattr(module, "WORKLOAD"):
        return module.WORKLOAD
    found = {
        k: v
        for k, v in vars(module).items()
        if not k.startswith("_") and not isinstance(v, type) and (isinstance(v, Workload) or hasattr(v, "as_workload"))
    }
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        raise UsageError(f"workload {ref!r}: the file defines no workload (a Workload or a scenario)")
    raise UsageError(
        f"workload {ref!r}: the file defines {len(found)} workloads ({', '.join(sorted(found))}); name one: {ref}:NAME"
    )


def as_workload(obj: Any) -> Workload:
    """A `Workload` as it is; a scenario (anything with ``as_workload()``) compiled."""
    return _as_workload(obj, f"{obj!r}", "")


def _as_workload(obj: Any, what: str, ref: str) -> Workload:
    if hasattr(obj, "as_workload") and not isinstance(obj, Workload):
        obj = obj.as_workload()
    if not isinstance(obj, Workload):
        raise UsageError(f"{what} is not a shmkernel workload (got {type(obj).__name__})")
    if ref and not obj.source:
        obj.source = ref
    return obj
