"""Sub-commands built on the scheduled mode and the measurement tools."""

from __future__ import annotations

import argparse
from typing import Any

from shmkernel.errors import UsageError


def add_parsers(sub: Any, add_common: Any, int_in: Any) -> None:
    pass


def dispatch(args: argparse.Namespace) -> int:
    raise UsageError(f"unknown command {args.command!r}")
