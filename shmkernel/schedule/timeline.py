"""A traced execution as a Chrome trace-event / Perfetto timeline (JSON that
ui.perfetto.dev and chrome://tracing open): one track per CPU, each ctx
operation a slice named by its kernel function with the operation, address
and value in its arguments, each reported event (``false_zero``, a use
after free, ...) an instant marker on its CPU, and the memory model's own
actions (store-buffer commits, propagations) on a track of their own per CPU.

Time is the step index (one step = `STEP_US` microseconds): the scheduled
mode has no wall-clock time worth showing, only an order."""

from __future__ import annotations

from typing import Any

from shmkernel.memory.actions import ACTION_BASE, decode_action
from shmkernel.schedule.ops import ACCESS, NAME, Access
from shmkernel.schedule.trace import Step, choice_note, step_text

STEP_US = 10
PID = 1
MEMORY_TID = 1000  # + CPU: that CPU's memory-model actions


def timeline(
    steps: list[Step], layout: Any, cpus: list[int], reports: list[Any], coordinator: int, title: str
) -> dict[str, Any]:
    out: list[dict[str, Any]] = [{"name": "process_name", "ph": "M", "pid": PID, "args": {"name": title}}]
    logs: dict[int, list] = {}
    marks: dict[int, list] = {}
    owners = sorted({c if c < ACTION_BASE else decode_action(c)[1] for c in cpus})
    for c in owners:
        rep = reports[c] if c < len(reports) and isinstance(reports[c], dict) else {}
        logs[c], marks[c] = rep.get("log", []), rep.get("events", [])
        name = f"CPU {c}" + (" (coordinator)" if c == coordinator else "")
        out.append({"name": "thread_name", "ph": "M", "pid": PID, "tid": c, "args": {"name": name}})
        out.append({"name": "thread_sort_index", "ph": "M", "pid": PID, "tid": c, "args": {"sort_index": c}})
    memory_tracks: set[int] = set()
    nth = dict.fromkeys(owners, 0)
    for i, st in enumerate(steps):
        ts = i * STEP_US
        if st.cpu >= ACTION_BASE:
            owner = decode_action(st.cpu)[1]
            if owner not in memory_tracks:
                memory_tracks.add(owner)
                out.append(
                    {"name": "thread_name", "ph": "M", "pid": PID, "tid": MEMORY_TID + owner,
                     "args": {"name": f"CPU {owner} memory (commits, propagations)"}}
                )  # fmt: skip
            text = step_text(layout, st)
            out.append(_slice(text, ts, MEMORY_TID + owner, {"step": i, "action": text}))
            continue
        k = nth[st.cpu]
        nth[st.cpu] += 1
        stack = logs[st.cpu][k][1] if k < len(logs[st.cpu]) else ""
        where = logs[st.cpu][k][2] if k < len(logs[st.cpu]) and len(logs[st.cpu][k]) > 2 else ""
        fn = stack.split(" < ")[0] if stack else ""
        text = step_text(layout, st) + choice_note(st)
        addr = layout.name_of(st.op.addr) if st.op.addr >= 0 else ""
        access = ACCESS[st.op.code].name.lower()
        args = {"step": i, "op": text, "name": NAME[st.op.code], "access": access, "function": fn, "stack": stack}
        args |= {"address": addr, "addr": st.op.addr, "source": where}
        args |= {"value": st.op.a1 if ACCESS[st.op.code] is Access.WRITE else st.result}
        out.append(_slice(f"{fn}: {text}" if fn else text, ts, st.cpu, args))
        for at, ev, detail in marks[st.cpu]:
            if at == k + 1:
                out.append(
                    {"name": ev, "ph": "i", "s": "t", "ts": ts + STEP_US, "pid": PID, "tid": st.cpu,
                     "args": {str(a): b for a, b in detail.items()}}
                )  # fmt: skip
    return {"traceEvents": out, "displayTimeUnit": "ms", "otherData": {"title": title, "step_us": STEP_US}}


def _slice(name: str, ts: int, tid: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "cat": "ctx", "ph": "X", "ts": ts, "dur": STEP_US, "pid": PID, "tid": tid, "args": args}
