"""Variant lookup shared by the kernel files: a name or a buggy/fixed alias."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from shmkernel.errors import UsageError

T = TypeVar("T")


def lookup(table: Mapping[str, T], aliases: Mapping[str, str], name: str) -> T:
    """``table[name]`` after resolving an alias; a one-line UsageError otherwise."""
    name = aliases.get(name, name)
    try:
        return table[name]
    except KeyError:
        raise UsageError(f"unknown variant {name!r}; choose one of {', '.join([*table, *aliases])}") from None
