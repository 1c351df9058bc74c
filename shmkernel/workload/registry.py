"""Workloads by name: the seeds' scenarios shipped in ``workloads/``, and any that
an installed package adds through the ``shmkernel.workloads`` entry-point group
(``name = "package.module:WORKLOAD"``).

The bundled package is imported by name when first needed, not at import
time: ``workloads/`` sits on top of the kernel layer, and nothing in
``shmkernel`` depends on it (tests/test_layers.py).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
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
    return [*_bundled().REGISTRY, *(n for n in _plugins() if n not in _bundled().REGISTRY)]


def get(name: str) -> Workload:
    """The workload called ``name`` (a one-line `UsageError` if there is none)."""
    bundled = _bundled()
    if name in bundled.REGISTRY:
        return bundled.get(name)
    ep = _plugins().get(name)
    if ep is None:
        raise UsageError(f"unknown workload {name!r}; choose one of {', '.join(names())}")
    wl = ep.load()
    if not isinstance(wl, Workload):
        raise UsageError(f"entry point {name!r} ({ep.value}) is not a shmkernel Workload")
    return wl


def all_workloads() -> list[Workload]:
    return [get(n) for n in names()]
