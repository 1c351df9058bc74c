"""``shmkernel litmus``: run litmus tests exhaustively under a memory model, or
free on the real CPUs, and report in the form of herd7/litmus7.

``--mode exhaustive`` enumerates every reachable final state: every
interleaving of the processes and, under ``tso``/``weak``/``lkmm``, every order
in which buffered stores commit and every other value a load may return
(``native`` then means what the scheduled mode runs on: one step at a time,
i.e. ``sc``); states explored before are not explored again (see
shmkernel.schedule.dpor), so executions counts pruned ones too.
Positive/Negative count distinct final states. ``--mode free`` runs the
processes ``--runs`` times on the pinned CPU processes of the host, each run
released together and memory reset between runs, as litmus7 does;
Positive/Negative count runs.

Load buffering is out of reach of these operational models (see
shmkernel.memory.models and shmkernel.memory.lkmm): LB-shaped tests the LKMM
allows (``LB+poonceonces`` in the corpus) are reported Never, even under
``lkmm``; they are listed in `LB_FAMILY`.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shmkernel.errors import UsageError
from shmkernel.litmus.condition import cond_text, cond_vars, holds
from shmkernel.litmus.parse import LitmusTest, parse_litmus
from shmkernel.litmus.program import coordinate, run_many, run_once
from shmkernel.memory.layout import Layout
from shmkernel.memory.registry import BUFFERED_MODELS, MODELS
from shmkernel.runtime.machine import Machine, Program
from shmkernel.workload import Workload

#: corpus tests whose LKMM outcome needs load buffering (reported Never here)
LB_FAMILY = ("LB+poonceonces",)
LB_CAVEAT = "load buffering is not modelled (a load is satisfied when its CPU reaches it): herd7 may answer Sometimes"


def load_buffering_shape(test: LitmusTest) -> bool:
    """Does the condition ask every process to read a value (non-zero) before it
    writes: the LB shape, which no model here can produce?"""
    if test.name in LB_FAMILY:
        return True
    if test.quantifier != "exists" or len(test.procs) < 2:
        return False
    wanted = {(c[1][1], c[1][2]) for c in _conjuncts(test.cond) if c[0] == "eq" and c[1][0] == "reg" and c[2] != 0}
    for p in test.procs:
        body = _straight(p.body)
        reads = [k for k, s in enumerate(body) if s[0] in ("read", "load_acquire") and (p.index, s[1]) in wanted]
        if not reads or not any(s[0] in ("write", "store_release") for s in body[reads[0] + 1 :]):
            return False
    return True


def _straight(body: list[Any]) -> list[Any]:
    """The statements in order, blocks opened (branches stay what they are)."""
    out: list[Any] = []
    for s in body:
        out += _straight(s[1]) if s[0] == "block" else [s]
    return out


def uses_rcu(test: LitmusTest) -> bool:
    """Does a process of ``test`` call an RCU service (`shmkernel.litmus.statements.RCU`)?"""

    def walk(stmts: list[Any]) -> bool:
        return any(
            s[0] == "kernel" or (s[0] == "block" and walk(s[1])) or (s[0] == "if" and (walk(s[2]) or walk(s[3])))
            for s in stmts
        )

    return any(walk(p.body) for p in test.procs)


def _conjuncts(c: Any) -> list[Any]:
    return _conjuncts(c[1]) + _conjuncts(c[2]) if c[0] == "and" else [c]


@dataclass
class LitmusResult:
    name: str
    model: str
    mode: str
    states: Counter = field(default_factory=Counter)  # state (tuple of (key, value)) -> count
    positive: int = 0
    negative: int = 0
    observation: str = "Never"
    seconds: float = 0.0
    executions: int = 0
    pruned: int = 0  # executions abandoned at a state explored before
    validated: bool = False
    test: LitmusTest | None = None
    caveat: str = ""  # why a Never may not be herd7's answer

    def as_json(self) -> dict[str, Any]:
        return {
            "test": self.name,
            "memory_model": self.model,
            "mode": self.mode,
            "observation": self.observation,
            "caveat": self.caveat,
            "positive": self.positive,
            "negative": self.negative,
            "executions": self.executions,
            "seconds": round(self.seconds, 4),
            "states": [{"state": dict(s), "count": c} for s, c in sorted(self.states.items())],
        }


class LitmusWorkload(Workload):
    """A litmus test seen as a workload: one CPU per process, no coordinator program."""

    def __init__(self, test: LitmusTest) -> None:
        super().__init__(
            name=f"litmus:{test.name}",
            variants={"test": test.name},
            aliases={"buggy": "test"},
            default_cpus=len(test.procs),
        )
        self.test = test

    def declare(self, layout: Layout, opts: dict[str, Any]) -> dict[str, Any]:
        return {
            "addr": {v: layout.scalar(f"{v}") for v in self.test.variables},
            "go": layout.scalar("litmus.go"),
            "done": layout.scalar("litmus.done"),
        }

    def reset_state(self, seg: Any, v: dict[str, Any]) -> None:
        """Initial values, written by the coordinator itself (test set-up, not kernel code)."""
        for var, a in v["addr"].items():
            seg.words[a] = self.test.init[var]

    def _proc_params(self, v: dict[str, Any], i: int) -> dict[str, Any]:
        p = self.test.procs[i]
        return {
            "body": p.body,
            "regs": list(dict.fromkeys(p.regs)),
            "addr": v["addr"],
            "reg_init": {r: val for (proc, r), val in self.test.reg_init.items() if proc == i},
        }

    def programs(self, variant: str, v: Any, cpus: int, opts: dict[str, Any], iterations: Any) -> list:
        return [Program(run_once, self._proc_params(v, i)) for i in range(cpus)] + [None]


def _state_key(test: LitmusTest, regs_by_proc: list[dict[str, int]], mem: dict[str, int]) -> tuple:
    shown: list[tuple[str, int]] = []
    wanted_regs = {(c[0], c[1]) for c in _cond_regs(test.cond)}
    for loc in test.locations:
        if ":" in loc:
            p, r = loc.split(":")
            wanted_regs.add((int(p), r))
    for p, r in sorted(wanted_regs):
        shown.append((f"{p}:{r}", regs_by_proc[p].get(r, 0) if p < len(regs_by_proc) else 0))
    mem_vars = cond_vars(test.cond) + [x for x in test.locations if ":" not in x]
    for var in dict.fromkeys(mem_vars):
        shown.append((var, mem.get(var, 0)))
    return tuple(shown)


def _cond_regs(c: Any) -> list[tuple[int, str]]:
    if c[0] == "eq":
        return [(c[1][1], c[1][2])] if c[1][0] == "reg" else []
    if c[0] in ("and", "or"):
        return _cond_regs(c[1]) + _cond_regs(c[2])
    if c[0] == "not":
        return _cond_regs(c[1])
    return []


def _finish(
    res: LitmusResult, test: LitmusTest, outcomes: list[tuple[list[dict[str, int]], dict[str, int]]], count_states: bool
) -> LitmusResult:
    pos_states, neg_states = set(), set()
    pos = neg = 0
    for regs, mem in outcomes:
        key = _state_key(test, regs, mem)
        flat = {(p, r): v for p, rs in enumerate(regs) for r, v in rs.items()}
        ok = holds(test.cond, flat, mem)
        res.states[key] += 1
        (pos_states if ok else neg_states).add(key)
        if ok:
            pos += 1
        else:
            neg += 1
    if count_states:
        pos, neg = len(pos_states), len(neg_states)
    res.positive, res.negative = pos, neg
    res.observation = "Never" if pos == 0 else ("Always" if neg == 0 else "Sometimes")
    if test.quantifier == "exists":
        res.validated = pos > 0
    elif test.quantifier == "~exists":
        res.validated = pos == 0
    else:
        res.validated = neg == 0
    res.test = test
    if res.observation == "Never" and res.mode == "exhaustive" and load_buffering_shape(test):
        res.caveat = LB_CAVEAT
    return res


def run_exhaustive(
    test: LitmusTest, model: str, max_executions: int = 2_000_000, state_cache: bool | None = None, trust: bool = False
) -> LitmusResult:
    """Every final state of ``test`` under ``model``: Optimal DPOR (native, sc), the
    stateful search (tso, weak, lkmm) or, with ``trust``, TruSt over execution graphs
    (`shmkernel.schedule.trust`; under lkmm the graph checked by the LKMM's axioms). A
    test with RCU always runs trust, its grace periods as memory (`rcu_memory`): the
    others' grace periods take a section as begun at the step before it."""
    from shmkernel.schedule.dpor import DPORScheduler
    from shmkernel.schedule.session import Session
    from shmkernel.schedule.stateful import StatefulScheduler
    from shmkernel.schedule.trust import TrustScheduler

    rcu = uses_rcu(test)
    trust = trust or rcu
    wl = LitmusWorkload(test)
    res = LitmusResult(test.name, model, "exhaustive")
    t0 = time.perf_counter()
    engine_model = "sc" if model == "native" else model
    outcomes = []
    refused = 0
    with Session(wl, "test", len(test.procs), {}, 1, engine_model, 10_000) as sess:
        sched: DPORScheduler | StatefulScheduler | TrustScheduler
        if trust:
            sess.engine.use_graph_model()
            sess.engine.rcu_memory = rcu  # grace periods as memory (`rcu_memory`)
            sched = TrustScheduler(max_executions)
        elif engine_model in BUFFERED_MODELS:
            sched = StatefulScheduler(max_executions, state_cache=state_cache is not False)
        else:
            sched = DPORScheduler(max_executions)
        while sched.new_execution():
            ex, _ = sess.execute(sched)
            res.executions += 1
            if ex.outcome == "pruned":
                res.pruned += 1
                continue
            assert ex.result is not None and sess.m.seg is not None
            regs = [r if isinstance(r, dict) else {} for r in ex.result.results[: len(test.procs)]]
            mem = {v: sess.m.seg.words[a] for v, a in sess.m.vars["addr"].items()}
            outcomes.append((regs, mem))
        if isinstance(sched, TrustScheduler) and (sched.unsupported or not sched.exhausted):
            why = f"trust gave way ({sched.unsupported})" if sched.unsupported else "trust ran out of its budget"
            raise RuntimeError(f"{test.name}: {why}: its final states would not be all of them")
        refused = getattr(sched, "lb_refused", 0)
    res.seconds = time.perf_counter() - t0
    res = _finish(res, test, outcomes, count_states=True)
    if trust and model == "lkmm":  # trust has load buffering: its only caveat is a revisit it could not take
        missing = f"trust could not take {refused} load-buffering revisit(s): a final state may be missing"
        res.caveat = missing if refused else ""
    return res


def run_free(test: LitmusTest, runs: int) -> LitmusResult:
    if uses_rcu(test):  # a grace period would wait for the other processes' runs to end
        raise UsageError(f"{test.name}: RCU (rcu_read_lock, synchronize_rcu) runs in --mode exhaustive only")
    wl = LitmusWorkload(test)
    res = LitmusResult(test.name, "native", "free")
    n = len(test.procs)
    t0 = time.perf_counter()
    with Machine(n, declare=lambda lay: wl.declare(lay, {})) as m:
        v = m.vars
        assert m.seg is not None
        m.seg.words[v["go"]] = 0
        m.seg.words[v["done"]] = 0
        progs: list[Program | None] = []
        for i in range(n):
            p = wl._proc_params(v, i) | {"go": v["go"], "done": v["done"], "runs": runs}
            progs.append(Program(run_many, p))
        progs.append(
            Program(
                coordinate,
                {
                    "addr": v["addr"],
                    "init": test.init,
                    "go": v["go"],
                    "done": v["done"],
                    "nprocs": n,
                    "runs": runs,
                    "variables": test.variables,
                },
            )
        )
        r = m.run(progs, timeout=600.0)
    per_proc = r.results[:n]
    mems = r.results[n]
    outcomes = []
    for k in range(len(mems)):
        regs = [dict(zip(wl._proc_params(v, i)["regs"], per_proc[i][k], strict=False)) for i in range(n)]
        outcomes.append((regs, dict(zip(test.variables, mems[k], strict=False))))
    res.executions = len(outcomes)
    res.seconds = time.perf_counter() - t0
    return _finish(res, test, outcomes, count_states=False)


def run_file(path: str, model: str = "native", mode: str = "exhaustive", runs: int = 1000) -> LitmusResult:
    if model not in MODELS:
        raise UsageError(f"unknown memory model {model!r}; choose one of {', '.join(MODELS)}")
    test = parse_litmus(path)
    if mode == "exhaustive":
        return run_exhaustive(test, model)
    if mode == "free":
        if model != "native":
            raise UsageError("--mode free runs on the host's own memory model: use --memory-model native")
        return run_free(test, runs)
    raise UsageError(f"unknown mode {mode!r}; choose free or exhaustive")


def format_result(res: LitmusResult) -> str:
    """herd7-style report."""
    test = res.test
    assert test is not None
    kind = {"exists": "Allowed", "~exists": "Forbidden", "forall": "Required"}[test.quantifier]
    model = (
        "the host's own (free runs)"
        if res.mode == "free"
        else ("sc (one step at a time)" if res.model == "native" else res.model)
    )
    lines = [f"Test {res.name} {kind}", f"Model {model}", f"States {len(res.states)}"]
    for key, count in sorted(res.states.items()):
        flat = {}
        mem = {}
        for k, val in key:
            if ":" in k:
                p, r = k.split(":")
                flat[(int(p), r)] = val
            else:
                mem[k] = val
        mark = "*>" if holds(test.cond, flat, mem) else ":>"
        text = " ".join(f"{k}={val};" for k, val in key)
        lines.append(f"{mark}{text}" + (f"  ({count} run{'s' if count != 1 else ''})" if res.mode == "free" else ""))
    lines.append("Ok" if res.validated else "No")
    lines.append("Witnesses")
    lines.append(f"Positive: {res.positive} Negative: {res.negative}")
    lines.append(f"Condition {test.quantifier} ({cond_text(test.cond)})")
    lines.append(
        f"Observation {res.name} {res.observation} {res.positive} {res.negative}"
        + (f"  ({res.caveat})" if res.caveat else "")
    )
    lines.append(f"Time {res.name} {res.seconds:.2f}")
    return "\n".join(lines)
