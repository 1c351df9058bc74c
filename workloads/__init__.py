"""The workloads: one module per seed scenario, looked up by name."""

from __future__ import annotations

import importlib

from shmkernel.errors import UsageError
from shmkernel.workload import Workload

#: name -> module under ``workloads`` holding ``WORKLOAD``
REGISTRY = {
    "refcount": "refcount",
    "rmmod": "rmmod",
    "modcount-2002": "modcount2002",
    "symbol-get-put": "symbols",
    "livepatch": "livepatch",
    "static-key": "static_key",
}


def get(name: str) -> Workload:
    if name not in REGISTRY:
        raise UsageError(f"unknown workload {name!r}; choose one of {', '.join(REGISTRY)}")
    return importlib.import_module(f"workloads.{REGISTRY[name]}").WORKLOAD


def all_workloads() -> list[Workload]:
    return [get(n) for n in REGISTRY]
