"""Random small concurrent programs, to check the explorer against brute force.

A program is a few CPUs, each a short list of instructions over a few shared
words: reads into registers, writes of constants or of a register plus one,
``cmpxchg`` and ``atomic_inc``, barriers, an optional mutex around a stretch,
and value-dependent skips (``skip_if r == v: skip n``), so that what a CPU
does next depends on what it read. `Interp` runs one CPU's list as an
in-process program. The *outcome* of an execution is the final memory,
every register, and whether it ended or deadlocked: a sound search reaches
exactly the outcomes brute-force enumeration reaches.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from shmkernel.schedule.bruteforce import BruteForceScheduler
from shmkernel.schedule.drive import Execution, Op
from shmkernel.schedule.hb import canonical
from shmkernel.schedule.inprocess import InProcessEngine, InProcessResult
from shmkernel.schedule.ops import CODE, DONE

Instr = tuple  # ("read", var, reg) | ("write", var, k) | ("write_inc", var, reg) | ("cmpxchg", var, old, new, reg)
#                | ("inc", var) | ("pcpu_inc", var) | ("lock", m) | ("unlock", m) | ("skip_if", reg, value, n) | ("mb",) | ("wmb",) | ("rmb",)
#                | ("await", var, value, reg): read var once it holds another value (`ops.Access.AWAIT`)

_FENCE = {"mb": "smp_mb", "wmb": "smp_wmb", "rmb": "smp_rmb"}
READS = ("read", "cmpxchg", "await")  # the instructions that fill a register


@dataclass(frozen=True)
class RandomProgram:
    code: tuple[tuple[Instr, ...], ...]  # one instruction list per CPU
    nvars: int
    nlocks: int

    @property
    def nwords(self) -> int:
        return self.nvars + self.nlocks

    def lock_word(self, m: int) -> int:
        return self.nvars + m

    def programs(self) -> list[Interp]:
        return [Interp(self, c) for c in self.code]

    def text(self) -> str:
        return "\n".join(f"CPU{i}: " + "; ".join(" ".join(map(str, ins)) for ins in c) for i, c in enumerate(self.code))


class Interp:
    """One CPU of a `RandomProgram`: its next operation, and what it read."""

    def __init__(self, prog: RandomProgram, code: tuple[Instr, ...]) -> None:
        self.prog = prog
        self.code = code
        self.pc = 0
        self.regs = [0] * sum(1 for i in code if i[0] in READS)

    def start(self) -> Op:
        return self._next()

    def step(self, result: int) -> Op:
        ins = self.code[self.pc]
        if ins[0] in READS:
            self.regs[ins[-1]] = result
        self.pc += 1
        return self._next()

    def _next(self) -> Op:
        while self.pc < len(self.code):
            ins = self.code[self.pc]
            kind = ins[0]
            if kind == "skip_if":
                _, reg, value, n = ins
                self.pc += 1 + (n if self.regs[reg] == value else 0)
                continue
            if kind == "read":
                return Op(CODE["read_once"], ins[1], 0, 0)
            if kind == "await":
                return Op(CODE["rcu_qs_wait"], ins[1], ins[2], 0)
            if kind == "write":
                return Op(CODE["write_once"], ins[1], ins[2], 0)
            if kind == "write_inc":
                return Op(CODE["write_once"], ins[1], self.regs[ins[2]] + 1, 0)
            if kind == "cmpxchg":
                return Op(CODE["atomic_cmpxchg"], ins[1], ins[2], ins[3])
            if kind == "inc":
                return Op(CODE["atomic_inc"], ins[1], 0, 0)
            if kind == "pcpu_inc":  # this_cpu_inc: a read and a write, not atomic
                return Op(CODE["this_cpu_inc"], ins[1], 0, 0)
            if kind == "lock":
                return Op(CODE["mutex_lock"], self.prog.lock_word(ins[1]), 0, 0)
            if kind == "unlock":
                return Op(CODE["mutex_unlock"], self.prog.lock_word(ins[1]), 0, 0)
            return Op(CODE[_FENCE[kind]], -1, 0, 0)
        return Op(DONE, -1, 0, 0)


def outcome(ex: Execution, prog: RandomProgram) -> tuple:
    """What an execution computed: memory, registers, and how it ended."""
    res = ex.result
    assert isinstance(res, InProcessResult)
    regs = tuple(tuple(p.regs) for p in res.programs)
    return res.memory[: prog.nvars], regs, ex.outcome


def generate(
    rng: random.Random,
    max_cpus: int = 3,
    max_ops: int = 7,
    fences: bool = False,
    locks: bool = True,
    percpu: bool = False,
    awaits: bool = False,
) -> RandomProgram:
    """A random program of 2..``max_cpus`` CPUs and at most ``max_ops`` memory steps
    (``percpu``: also ``this_cpu_inc``, a read and a write of one step, on a shared word;
    ``awaits``: also awaiting reads, which only the graph models and sc run as such)."""
    ncpus = rng.randint(2, max_cpus)
    nvars = rng.randint(1, 3)
    lens = [1] * ncpus
    for _ in range(rng.randint(0, max(0, max_ops - ncpus))):
        lens[rng.randrange(ncpus)] += 1
    use_lock = locks and rng.random() < 0.35
    code = []
    for n in lens:
        body: list[Instr] = []
        reads = 0
        for _ in range(n):
            kind = rng.choices(
                ["read", "write", "write_inc", "cmpxchg", "inc", "fence", "pcpu_inc", "await"],
                weights=[4, 3, 2 if reads else 0, 1, 1, 2 if fences else 0, 2 if percpu else 0, 2 if awaits else 0],
            )[0]
            x = rng.randrange(nvars)
            if kind in ("read", "await"):
                body.append(("read", x, reads) if kind == "read" else ("await", x, rng.randint(0, 1), reads))
                reads += 1
            elif kind == "write":
                body.append(("write", x, rng.randint(1, 2)))
            elif kind == "write_inc":
                body.append(("write_inc", x, rng.randrange(reads)))
            elif kind == "cmpxchg":
                body.append(("cmpxchg", x, rng.randint(0, 1), rng.randint(1, 3), reads))
                reads += 1
            elif kind in ("inc", "pcpu_inc"):
                body.append((kind, x))
            else:
                body.append((rng.choice(["mb", "wmb", "rmb"]),))
        if use_lock and rng.random() < 0.7:
            a = rng.randrange(len(body))
            b = rng.randrange(a, len(body))
            body = body[:a] + [("lock", 0)] + body[a : b + 1] + [("unlock", 0)] + body[b + 1 :]
        code.append(_add_skips(rng, body))
    return RandomProgram(tuple(tuple(c) for c in code), nvars, 1 if use_lock else 0)


def _add_skips(rng: random.Random, body: list[Instr]) -> list[Instr]:
    """Insert a value-dependent skip after a read, never across a lock or unlock."""
    reads = [k for k, ins in enumerate(body) if ins[0] in READS]
    if not reads or rng.random() < 0.5:
        return body
    k = rng.choice(reads)
    rest = body[k + 1 :]
    n = 0
    while n < len(rest) and rest[n][0] not in ("lock", "unlock") and n < 2:
        n += 1
    if n == 0:
        return body
    skip = ("skip_if", body[k][-1], rng.randint(0, 2), rng.randint(1, n))
    return body[: k + 1] + [skip] + rest


def outcomes(
    prog: RandomProgram, scheduler: Any, memory_model: str = "native", max_steps: int = 500, graph: bool = False
) -> tuple[set[tuple], int]:
    """Every outcome ``scheduler``'s search reaches on ``prog``, and how many
    executions it ran (abandoned ones included). The search must finish. With
    ``graph`` the model is kept as an execution graph (`shmkernel.memory.graph`)."""
    eng = InProcessEngine(prog.nwords, len(prog.code), memory_model, max_steps)
    if graph:
        eng.use_graph_model()
    seen: set[tuple] = set()
    runs = 0
    while scheduler.new_execution():
        ex = eng.run(prog.programs(), scheduler)
        runs += 1
        if ex.outcome in ("ok", "deadlock"):
            seen.add(outcome(ex, prog))
    if not scheduler.exhausted:
        raise RuntimeError(f"{scheduler.name} did not finish within its budget on\n{prog.text()}")
    return seen, runs


def trust_outcomes(prog: RandomProgram, memory_model: str) -> tuple[set[tuple], list, Any]:
    """Every outcome TruSt (`shmkernel.schedule.trust`) reaches on ``prog``, each
    complete execution's graph (optimal: no two alike), and the finished search."""
    from shmkernel.schedule.trust import TrustScheduler

    eng = InProcessEngine(prog.nwords, len(prog.code), memory_model, 500)
    eng.use_graph_model()
    s = TrustScheduler()
    seen: set[tuple] = set()
    graphs = []
    while s.new_execution():
        ex = eng.run(prog.programs(), s)
        if ex.outcome in ("ok", "deadlock"):
            seen.add(outcome(ex, prog))
            graphs.append(eng.model.state_key())
    if not s.exhausted or s.unsupported:
        raise RuntimeError(f"trust did not finish on\n{prog.text()}: {s.unsupported}")
    return seen, graphs, s


def trace_count(prog: RandomProgram) -> int:
    """How many Mazurkiewicz traces ``prog`` has: the distinct happens-before
    classes of the complete executions of a full search with sleep sets."""
    eng = InProcessEngine(prog.nwords, len(prog.code))
    s = BruteForceScheduler(sleep_sets=True)
    keys = set()
    while s.new_execution():
        ex = eng.run(prog.programs(), s)
        if ex.outcome != "pruned":
            keys.add(canonical(ex.steps))
    return len(keys)
