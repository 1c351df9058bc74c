"""A workload made of one test program on every CPU, for the explorer's own tests."""

from __future__ import annotations

from typing import Any

from shmkernel.runtime.machine import Program
from shmkernel.workload import Workload


def reset_words(ctx: Any, p: dict) -> None:
    """Every execution starts from the same state: each word 0."""
    for name in p["words"]:
        ctx.write_once(p[name], 0)


class Toy(Workload):
    """``program(ctx, params)`` on every worker CPU (the coordinator idle); ``params``
    holds each word of ``words`` by name, and ``iterations``."""

    def __init__(self, program: Any, words: tuple[str, ...] = ("a", "b")) -> None:
        super().__init__(
            name="toy",
            variants={"only": "test program"},
            aliases={"buggy": "only"},
            events=(),
            explore_defaults={"iterations": 1},
        )
        self.program = program
        self.words = words

    def declare(self, layout: Any, opts: dict) -> dict:
        return {name: layout.scalar(f"toy.{name}") for name in self.words} | {"words": self.words}

    def setup(self, variant: str, v: dict, opts: dict) -> Program:
        return Program(reset_words, v)

    def programs(self, variant: str, v: dict, cpus: int, opts: dict, iterations: Any) -> list:
        return [Program(self.program, {**v, "iterations": iterations})] * cpus + [None]
