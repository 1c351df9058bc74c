"""Schedules as short strings, and traces as CPU columns like the seeds' diagrams.

A schedule string carries everything replay needs and checks:
``sk1:WORKLOAD:VARIANT:CPUS:ITERATIONS:MODEL:OPTIONS:CHOICES:CRC``, where
CHOICES is run-length encoded (``2-0x6-1x5-2x3``: CPU 2 once, CPU 0 six
times, ...), OPTIONS the workload options that differ from their defaults
(``name=value`` joined by ``,``) and CRC a CRC-32 of the rest (hex), so a
truncated or edited string is refused with one line instead of replaying
something else.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from shmkernel.errors import UsageError
from shmkernel.memory.actions import (
    ACTION_BASE,
    COMMIT,
    GRAPH,
    PROMISE,
    decode_action,
    decode_promise,
    graph_choice_id,
    promise_id,
    read_older_id,
)
from shmkernel.schedule.drive import Step
from shmkernel.schedule.ops import ACCESS, NAME, Access

VERSION = "sk1"
MAX_STEPS = 10**7


@dataclass(frozen=True)
class ScheduleHeader:
    workload: str
    variant: str
    cpus: int
    iterations: int
    memory_model: str
    options: dict[str, str]


#: op codes that only store (a graph choice other than the newest places them earlier in co)
_STORES = frozenset(code for code, name in enumerate(NAME) if ACCESS[code] == Access.WRITE)


def choice_note(st: Any) -> str:
    """What a model's choice did to a step: a load returned an older value, or (graph
    model) a store went before a store already placed in its word's co."""
    if st.choice < 0:
        return ""
    kind, _, k = decode_action(st.choice)
    if kind == PROMISE:
        cpu, writer, _ = decode_promise(st.choice)
        return f" (load buffering: the write CPU {writer[0]} makes later)"
    if kind == GRAPH and k == 0:
        return ""  # the newest way: what a step without a choice does
    if kind == GRAPH and st.op.code in _STORES:
        return " (before a newer store in co)"
    return " (an older value)"


def token(choice: int) -> str:
    """A choice as the schedule string writes it: ``2``, ``c0.1``, ``r1.2``."""
    if choice < ACTION_BASE:
        return str(choice)
    kind, cpu, arg = decode_action(choice)
    if kind == PROMISE:
        _, (wcpu, wat), value = decode_promise(choice)
        return f"p{cpu}.{wcpu}.{wat}.{value}"
    return f"{'c' if kind == COMMIT else 'g' if kind == GRAPH else 'r'}{cpu}.{arg}"


def _untoken(tok: str) -> int:
    if tok.isdigit():
        return int(tok)
    kind, rest = tok[:1], tok[1:]
    if kind == "p":
        return _unpromise(tok, rest)
    cpu, dot, arg = rest.partition(".")
    if kind not in ("c", "r", "g") or not dot or not cpu.isdigit() or not arg.isdigit():
        raise UsageError(f"malformed schedule: bad step token {tok!r}")
    if int(cpu) >= 1 << 20 or int(arg) >= 1 << 20:
        raise UsageError(f"malformed schedule: step token {tok!r} out of range")
    if kind == "c":
        return ACTION_BASE + (COMMIT << 40) + (int(cpu) << 20) + int(arg)
    if kind == "g":
        return graph_choice_id(int(cpu), int(arg))
    return read_older_id(int(cpu), int(arg))


def _unpromise(tok: str, rest: str) -> int:
    """``pN.C.A.V``: CPU N's load reads CPU C's A-th event, which writes V (load buffering)."""
    parts = rest.split(".")
    if len(parts) != 4 or not all(p.isdigit() for p in parts[:3]) or not parts[3].lstrip("-").isdigit():
        raise UsageError(f"malformed schedule: bad step token {tok!r}")
    cpu, wcpu, wat = (int(p) for p in parts[:3])
    if max(cpu, wcpu, wat) >= 1 << 20:
        raise UsageError(f"malformed schedule: step token {tok!r} out of range")
    return promise_id(cpu, (wcpu, wat), int(parts[3]))


def encode_choices(choices: list[int]) -> str:
    """Run-length encoded: ``2-0x6-c0.0-1x5-r2.1``; ``cN.I`` commits CPU N's
    I-th buffered store, ``rN.K`` lets CPU N's load return a value K writes old,
    ``gN.K`` adds CPU N's memory operation with the graph model's K-th choice,
    ``pN.C.A.V`` lets CPU N's load read CPU C's A-th event, a write of V still to come."""
    out: list[str] = []
    i = 0
    while i < len(choices):
        j = i
        while j < len(choices) and choices[j] == choices[i]:
            j += 1
        tok = token(choices[i])
        out.append(tok if j - i == 1 else f"{tok}x{j - i}")
        i = j
    return "-".join(out)


def decode_choices(body: str) -> list[int]:
    if not body:
        return []
    out: list[int] = []
    for tok in body.split("-"):
        head, _, count = tok.partition("x")
        if not head or (count and not count.isdigit()):
            raise UsageError(f"malformed schedule: bad step token {tok!r}")
        n = int(count) if count else 1
        if n < 1 or len(out) + n > MAX_STEPS:
            raise UsageError(f"malformed schedule: more than {MAX_STEPS:,} steps or an empty run")
        out.extend([_untoken(head)] * n)
    return out


def encode(h: ScheduleHeader, choices: list[int]) -> str:
    opts = ",".join(f"{k}={v}" for k, v in sorted(h.options.items()))
    core = ":".join(
        [VERSION, h.workload, h.variant, str(h.cpus), str(h.iterations), h.memory_model, opts, encode_choices(choices)]
    )
    return f"{core}:{zlib.crc32(core.encode()) & 0xFFFFFFFF:08x}"


def decode(s: str) -> tuple[ScheduleHeader, list[int]]:
    s = s.strip()
    parts = s.split(":")
    if len(parts) != 9 or parts[0] != VERSION:
        raise UsageError("malformed schedule: expected sk1:WORKLOAD:VARIANT:CPUS:ITERATIONS:MODEL:OPTIONS:STEPS:CRC")
    core = ":".join(parts[:8])
    if f"{zlib.crc32(core.encode()) & 0xFFFFFFFF:08x}" != parts[8]:
        raise UsageError("malformed schedule: checksum mismatch (truncated or edited?)")
    _, wl, variant, cpus, iters, model, opts, body = parts[:8]
    if not cpus.isdigit() or not iters.isdigit():
        raise UsageError("malformed schedule: CPU count and iterations must be integers")
    options: dict[str, str] = {}
    for kv in filter(None, opts.split(",")):
        k, eq, v = kv.partition("=")
        if not eq:
            raise UsageError(f"malformed schedule: bad option {kv!r}")
        options[k] = v
    return ScheduleHeader(wl, variant, int(cpus), int(iters), model, options), decode_choices(body)


def step_text(layout: Any, step: Step) -> str:
    """One step as the diagram prints it (the timeline's slices too)."""
    op, name = step.op, NAME[step.op.code]
    if name == "memory":
        var = layout.name_of(op.addr)
        return f"(store buffer) commit {var} = {step.result}"
    acc = ACCESS[op.code]
    var = layout.name_of(op.addr) if op.addr >= 0 else ""
    if acc is Access.READ:
        return f"{name}({var}) -> {step.result}"
    if acc is Access.AWAIT:
        return f"{name}({var} != {op.a1}) -> {step.result}"
    if acc is Access.WRITE:
        return f"{name}({var}, {op.a1})"
    if acc in (Access.RMW, Access.LOCK):
        args = ", ".join([var] + [str(a) for a in (op.a1, op.a2)][: _arity(name)])
        return f"{name}({args}) -> {step.result}"
    return name


def _arity(name: str) -> int:
    if name in ("atomic_cmpxchg", "atomic_add_unless"):
        return 2
    if name in (
        "atomic_add_return",
        "atomic_fetch_add",
        "atomic_add",
        "atomic_sub_return",
        "atomic_xchg",
        "this_cpu_add",
    ):
        return 1
    return 0


def render(
    steps: list[Step], layout: Any, cpus: list[int], reports: list[Any], coordinator: int, width: int = 46
) -> str:
    """The interleaving as one column per CPU, one row per step."""
    logs: dict[int, list] = {}
    events: dict[int, list] = {}
    for c in cpus:
        rep = reports[c] if c < len(reports) and isinstance(reports[c], dict) else {}
        logs[c] = rep.get("log", [])
        events[c] = rep.get("events", [])
    cpus = sorted({c if c < ACTION_BASE else decode_action(c)[1] for c in cpus})
    nth = dict.fromkeys(cpus, 0)
    head = "step | " + " | ".join(f"CPU {c}{' (coordinator)' if c == coordinator else ''}".ljust(width) for c in cpus)
    lines = [head, "-" * len(head)]
    last_fn: dict[int, str] = {}
    for i, st in enumerate(steps):
        if st.cpu >= ACTION_BASE:
            owner = decode_action(st.cpu)[1]
            cells = [(step_text(layout, st) if c == owner else "").ljust(width) for c in cpus]
            lines.append(f"{i:4} | " + " | ".join(cells))
            continue
        k = nth[st.cpu]
        nth[st.cpu] += 1
        fn = ""
        if k < len(logs[st.cpu]):
            fn = logs[st.cpu][k][1].split(" < ")[0]
        text = step_text(layout, st) + choice_note(st)
        if fn and fn != last_fn.get(st.cpu):
            text = f"{fn}: {text}"
            last_fn[st.cpu] = fn
        cells = [(text if c == st.cpu else "").ljust(width) for c in cpus]
        lines.append(f"{i:4} | " + " | ".join(cells))
        for at, ev, detail in events[st.cpu]:
            if at == k + 1:
                extra = " ".join(f"{a}={b}" for a, b in detail.items())
                cells = [(f"** {ev} {extra}".rstrip() if c == st.cpu else "").ljust(width) for c in cpus]
                lines.append("     | " + " | ".join(cells))
    return "\n".join(lines)
