"""``trust``: one execution per consistent execution graph, under sc, tso, weak and lkmm.

The stateful graph search (``--scheduler graph``) runs an execution per (graph
prefix, choice): 10-150x more than there are graphs. This search is TruSt
(Kokologiannakis et al., POPL 2022; GenMC's algorithm): the CPUs add their
events in one fixed order (`TrustScheduler._forward`: the lowest CPU that can
move, a spinning one last, one that must keep a promise it cannot keep yet after
the others); a read tries every write it may consistently read, a write every
consistent place in ``co``; and when a
write is added, each earlier read it could feed that it does not depend on is
*revisited*: the graph up to that read plus the write's porf-prefix, the read
reading the new write, is planned as an execution of its own
(`shmkernel.schedule.trust_graph`). A revisit is taken only from the one graph
whose deleted events were added maximally, so every consistent graph is
explored once (polynomial memory: a stack of plans). The model decides what
is consistent: the machine's time order under sc, tso and weak
(`shmkernel.memory.graph`), the LKMM's axioms under lkmm
(`shmkernel.memory.graph_lkmm`, where a read may also be revisited past its
CPU's later events that the write needs but that do not depend on it: load
buffering, `shmkernel.schedule.trust_lb`; a revisit it cannot take there is
counted in ``lb_refused``, and then the search proves nothing).

An execution replays its plan (`Plan`: each step by the write its read reads
and its write's place in ``co``), then goes on forward; a plan the model finds
inconsistent is ``pruned``. What the graph does not order is outside the
algorithm: stop_machine and parking (ordered by the schedule, not by reads),
writes made outside the model, waits on hidden state. There the search stops
with ``unsupported`` set and `shmkernel.schedule.searches.trust_search` runs
the stateful search instead (grace periods and context switches: it asks for
them as memory, `rcu_memory`): the verdict is always a complete search's."""

from __future__ import annotations

from itertools import takewhile
from typing import Any

from shmkernel.errors import NondeterminismError
from shmkernel.memory.actions import ACTION_BASE, decode_action, graph_choice_id, promise_id
from shmkernel.memory.graph_order import INIT
from shmkernel.memory.models import ATOMICS, LOADS, PERCPU_RMW, RMW_FULL, STORES, stored_value
from shmkernel.schedule.drive import PRUNE, Execution, Op, State
from shmkernel.schedule.ops import ACCESS, HIDDEN_STATE, NAME
from shmkernel.schedule.rcu_memory import AS_MEMORY, GRACE_PERIODS
from shmkernel.schedule.trust_blocked import LOCKS, await_unreadable, blocked_now, waits_on_a_released_lock
from shmkernel.schedule.trust_graph import (
    BLOCKED,
    FIXED,
    FORWARD,
    HOLE,
    PROMISED,
    Plan,
    Planned,
    RevisitGraph,
    Taken,
    Writer,
    conflict_writers,
    hole_way,
    memory_op,
    next_plan,
    replayed,
    write_at,
)
from shmkernel.schedule.trust_lb import RELEASES

IN_ORDER = (FIXED, BLOCKED, PROMISED, HOLE)  #: a plan's steps replayed in stamp order, as their CPUs reach them


class TrustScheduler:
    name = "trust"
    complete_search = True
    picks_ways = True  # the Driver lists a memory step once; trust names its way (`Driver._drive`)

    def __init__(self, max_executions: int = 100_000) -> None:
        self.left = max_executions
        self.started = self.exhausted = self.bound_hit = False
        self.executions = self.pruned = self.stuck = self.blocked = 0
        self.unsupported = ""  # why the workload left the algorithm (then no verdict here)
        self.lb_refused = 0  # load-buffering revisits not taken (`trust_lb`): then no proof
        self.work: list[Plan] = []
        self.buffered_plans: set[tuple] = set()  # the load-buffering plans taken (`next_plan`)

    # -- executions ------------------------------------------------------------------------------
    def new_execution(self) -> bool:
        if self.unsupported or self.left <= 0:
            return False
        if not self.started:
            self.started = True
            plan = Plan([], {}, 0)
        elif (plan := next_plan(self.work, self.buffered_plans)) is None:
            self.exhausted = True
            return False
        self.left -= 1
        self.executions += 1
        self.plan, self.todo = plan, list(plan.steps)
        self.taken: list[Taken] = []
        self.next_stamp = plan.next_stamp
        self.relaxed: set[int] = set()  # CPUs that took cpu_relax() since their last memory step
        self.waits: set[int] = set()  # CPUs blocked at a lock that read a held word (BLOCKED)
        self.last: Taken | None = None  # the memory step just granted (its events come next)
        self.deferred: list[Taken] = []  # FORWARD steps replayed: their revisits come at the end
        self.model: Any = None
        return True

    def end_execution(self, execution: Execution) -> None:
        model = self.model
        if model is None or self.unsupported:
            return
        self._absorb(model)
        reads = [(p.cpu, p.at) for p in self.todo if p.mode != BLOCKED] if execution.outcome == "deadlock" else []
        if reads and await_unreadable(model, reads, execution.blocked):
            self.pruned, self.todo, execution.outcome = self.pruned + 1, [], "pruned"  # not consistent
        if execution.outcome == "deadlock" and all(p.mode == BLOCKED for p in self.todo):
            # every CPU left waits at a lock another holds: the drive loop ended the run
            # before the plan's last blocked reads and the forward ones were added
            for p in self.todo:
                self._wait_at(model, p, execution.blocked[p.cpu])
            self.todo = []
            if self.deferred:
                self._deferred_revisits(model)
            for c, op in sorted(execution.blocked.items()):
                if c not in self.waits and blocked_now(model, c, op):
                    self._block(model, c, op)
        if not self.todo and self.deferred:
            self._deferred_revisits(model)
        if execution.outcome == "deadlock" and waits_on_a_released_lock(model, self.taken):
            # a blocked read its word has since released: TruSt's blocked graph (`trust_blocked`)
            execution.outcome = "pruned"
            self.blocked += 1
            self.pruned += 1
        if self.todo and execution.outcome != "pruned":
            raise RuntimeError(f"trust: a planned graph could not be replayed ({execution.outcome})")
        if execution.outcome != "pruned" and getattr(model, "promised", None) and model.open_promises():
            raise NondeterminismError(f"trust: a promised write never came: {model.open_promises()}")

    def next_cpu(self, state: State) -> int:
        model = self.model = state.model
        self._absorb(model)
        why = self._outside_the_algorithm(state)
        if why:
            self.unsupported = why
            return PRUNE
        ids: dict[int, list[int]] = {}
        for x in state.eligible:
            ids.setdefault(decode_action(x)[1] if x >= ACTION_BASE else x, []).append(x)
        if self.todo:
            return self._replay(state, ids)
        if self.deferred:
            self._deferred_revisits(model)
        return self._forward(state, ids)

    def _outside_the_algorithm(self, state: State) -> str:
        model = state.model
        if model is None or not getattr(model, "graph", False):
            return "the trust search needs the graph model"
        if any(op.code in AS_MEMORY for op in state.pending.values()):
            return GRACE_PERIODS  # `trust_search` starts again with them as memory events
        if model.sync_chain or any(ACCESS[op.code] in HIDDEN_STATE for op in state.pending.values()):
            return "a wait on kernel state (stop_machine, parking)"
        return "a word written outside the model" if model.outside else ""

    def _absorb(self, model: Any) -> None:
        """Record the events the step granted last added, with their stamps."""
        t, self.last = self.last, None
        if t is None:
            return
        for eid in model.po[t.cpu][t.at :]:
            e = model.events[eid]
            if e.loc < 0:
                continue
            if e.reads:
                t.reid = eid
            if e.writes:
                t.weid, t.value = eid, e.wval
        if t.reid < 0:
            t.rstamp = -1
        if t.weid < 0:
            t.wstamp = -1
        self.taken.append(t)
        if t.readded and t.weid >= 0:  # its write is added anew: its revisits once the replay ends
            self.deferred.append(t)

    def _stamps(self, n: int) -> int:
        s, self.next_stamp = self.next_stamp, self.next_stamp + n
        return s

    def _push(self, steps: list[Planned], co: dict[int, list[tuple[int, int]]]) -> None:
        self.work.append(Plan(steps, co, self.next_stamp, self.plan.writes))

    # -- replaying a plan ----------------------------------------------------------------------------
    def _replay(self, state: State, ids: dict[int, list[int]]) -> int:
        """The next planned step that can go: among the FIXED (and BLOCKED) steps at the
        head, the one with the smallest stamp whose CPU can move and whose write is
        there; the revisiting write and what follows it, in order."""
        model = state.model
        while self.todo:
            head = list(takewhile(lambda p: p.mode in IN_ORDER, self.todo)) or self.todo[:1]
            waiting: set[int] = set()
            for p in head:
                c = p.cpu
                if c in waiting:
                    continue
                waiting.add(c)
                op = state.pending[c]
                if not memory_op(op):
                    if c in ids:
                        return self._plain_step(c, op, ids)
                    continue
                if len(model.po[c]) != p.at:
                    raise NondeterminismError(f"trust: CPU {c} reached event {len(model.po[c])}, planned {p.at}")
                if p.rf is not None and p.mode != PROMISED and len(model.po[p.rf[0]]) <= p.rf[1]:
                    continue
                if p.mode == BLOCKED:  # its CPU waits at its lock; no step
                    self.todo.remove(p)
                    self._wait_at(model, p, op)
                    break
                if c not in ids:
                    continue
                self.todo.remove(p)
                return self._planned_step(state, c, op, p)
            else:
                self.stuck += 1
                self.pruned += 1
                self.todo = []
                return PRUNE
        if self.deferred:
            self._deferred_revisits(model)
        return self._forward(state, ids)

    def _wait_at(self, model: Any, p: Planned, op: Op) -> None:  # a planned blocked read: p's CPU waits at op
        at = self._eid(model, p.rf)
        self.taken.append(Taken(p.cpu, p.at, NAME[op.code], op.addr, rstamp=p.rstamp, blocked=at, args=(op.a1, op.a2)))
        self.waits.add(p.cpu)

    def _plain_step(self, c: int, op: Op, ids: dict[int, list[int]]) -> int:
        if NAME[op.code] == "cpu_relax":
            self.relaxed.add(c)
        return ids[c][0]

    def _planned_step(self, state: State, c: int, op: Op, p: Planned) -> int:
        model = state.model
        name = NAME[op.code]
        p = hole_way(self, model, c, op, p) if p.mode == HOLE else p
        if p.mode == HOLE:
            return PRUNE  # a hole with no way to go (hole_way pruned the plan)
        cls = model.kind(name)
        if p.mode == PROMISED:  # load buffering: it reads a write still to come
            model.promise_next(c, p.rf, p.value)
        ways = model.ways(c, name, op.addr, op.a1, op.a2)
        ks = list(range(len(ways)))
        if cls not in STORES and p.mode != PROMISED:
            want = self._eid(model, p.rf)
            ks = [k for k in ks if ways[k].rf == want]
        if p.mode == FIXED and cls in (*STORES, PERCPU_RMW) and p.wstamp >= 0:
            mine = (c, write_at(cls, p.at))
            order = self.plan.co.get(op.addr, [])
            pos = sum(1 for w in model.co.get(op.addr, []) if order.index(model.ref(w)) < order.index(mine))
            ks = [k for k in ks if ways[k].co_at == pos]
        if not ks:
            self.pruned += 1  # the planned graph is not consistent
            self.todo = []
            return PRUNE
        ws = self._stamps(1) if p.mode == FORWARD else p.wstamp
        if p.mode != FIXED:  # every place of its write: the other places are plans of their own
            self._alternatives(model, c, op, ways, ks[1:], p.rstamp, ws, self.todo)
        self.relaxed.discard(c)
        self.last = Taken(c, p.at, name, op.addr, p.rstamp, ws, readded=p.mode == FORWARD, args=(op.a1, op.a2))
        return promise_id(c, p.rf, p.value) if p.mode == PROMISED else graph_choice_id(c, ks[0])

    def _alternatives(
        self, model: Any, c: int, op: Op, ways: list, ks: list[int], rs: int, ws: int, rest: list[Planned]
    ) -> None:
        """A plan for each other way ``ks`` of ``c``'s step: the graph so far, the step
        that way, then ``rest`` (what the plan being replayed still holds)."""
        if not ks:  # most steps have one way: no snapshot of the graph to build
            return
        ref = model.ref
        cls = model.kind(NAME[op.code])
        at = len(model.po[c])
        done = replayed(model, self.taken)
        base = {loc: [ref(w) for w in ids] for loc, ids in model.co.items()}
        wat = write_at(cls, at)
        # the next newest way is explored next, as GenMC orders them: static-key's seed-fix
        # wrong path at 11 executions (weak), 7 (lkmm), against 49 (GenMC: 8 + 3 blocked)
        for k in reversed(ks):
            ch = ways[k]
            co = {loc: list(ids) for loc, ids in base.items()}
            writes = cls not in LOADS and ch.ok
            if writes:
                co.setdefault(op.addr, []).insert(ch.co_at, (c, wat))
            rf = ref(ch.rf) if cls not in STORES else None
            step = Planned(c, at, rs if cls not in STORES else -1, ws if writes else -1, rf)
            self._push([*done, step, *rest], co)

    # -- going forward -------------------------------------------------------------------------------
    def _forward(self, state: State, ids: dict[int, list[int]]) -> int:
        """Add the next event: a CPU's steps that add none first; then the lowest CPU
        that can move, one spinning in cpu_relax() only when none else can."""
        model = state.model
        stuck: set[int] = set()  # CPUs whose step has no consistent way yet (a promise to keep)
        while True:
            order = [
                c
                for c in sorted(state.pending)
                if c not in self.waits | stuck and (c in ids or blocked_now(model, c, state.pending[c]))
            ]
            for c in order:
                if c in ids and not memory_op(state.pending[c]):
                    return self._plain_step(c, state.pending[c], ids)
            if not order:  # only CPUs blocked at a lock can move: a blocked graph, not an execution
                self.blocked += not stuck
                self.pruned += 1
                return PRUNE
            c = next((c for c in order if c not in self.relaxed), order[0])
            op = state.pending[c]
            if c not in ids or blocked_now(model, c, op):
                self._block(model, c, op)  # as TruSt adds it: a read of the held word
                continue
            ways = model.ways(c, NAME[op.code], op.addr, op.a1, op.a2)
            if ways:
                break
            stuck.add(c)  # it must keep a promise it cannot keep now: another CPU first
        name = NAME[op.code]
        cls = model.kind(name)
        rs = self._stamps(2)
        ws = rs + 1
        at = len(model.po[c])
        self._alternatives(model, c, op, ways, list(range(1, len(ways))), rs, ws, [])
        if cls not in LOADS:
            self._forward_revisits(model, c, at, op, ways, rs, ws)
        self.relaxed.discard(c)
        self.last = Taken(c, at, name, op.addr, rstamp=rs, wstamp=ws, args=(op.a1, op.a2))
        return graph_choice_id(c, 0)

    def _forward_revisits(self, model: Any, c: int, at: int, op: Op, ways: list, rs: int, ws: int) -> None:
        """The backward revisits of the write ``c``'s step adds: once per write it may
        read (a plain store: once), and for an atomic, from each write another atomic
        already read (the two cannot both have read it: the other one is revisited)."""
        name = NAME[op.code]
        cls = model.kind(name)
        wat = write_at(cls, at)
        deps = model.event_deps(c)
        if cls in STORES:
            a = Writer(c, at, wat, INIT, stored_value(name, op.a1), -1, ws, op.addr, deps, name in RELEASES)
            self._revisits(RevisitGraph(model, self.taken, a, set()))
            return
        seen = set()
        for ch in ways:
            if ch.ok and ch.rf not in seen:
                seen.add(ch.rf)
                a = Writer(c, at, wat, ch.rf, ch.new, rs, ws, op.addr, deps, full=cls == RMW_FULL)
                self._revisits(RevisitGraph(model, self.taken, a, set()))
        if cls in ATOMICS:
            self._conflicts(model, c, at, op, rs, ws, seen)

    def _conflicts(self, model: Any, c: int, at: int, op: Op, rs: int, ws: int, seen: set[int]) -> None:
        """``c``'s atomic reading a write another atomic already read (not in ``seen``,
        the writes it reads consistently): the other one is revisited to read it."""
        for a, t in conflict_writers(model, self.taken, c, at, op, rs, ws, seen):
            self._revisits(RevisitGraph(model, self.taken, a, set()), conflict=t)

    def _block(self, model: Any, c: int, op: Op) -> None:
        """``c`` takes a lock whose word is held (or awaits a value it cannot read yet): its
        read reads the last write and waits there (a blocked read, revisited by an unlock,
        a write of another value), after the revisits its atomic has from the free writes
        other locks already read."""
        rs = self._stamps(2)
        at = len(model.po[c])
        if NAME[op.code] in LOCKS:
            self._conflicts(model, c, at, op, rs, rs + 1, set())
        else:  # an await whose last write is the value it waits to change: the older others
            ways = model.ways(c, NAME[op.code], op.addr, op.a1, op.a2)
            self._alternatives(model, c, op, ways, list(range(len(ways))), rs, -1, [])
        co = model.co.get(op.addr)
        held = co[-1] if co else INIT  # a word that starts held (a completion not done yet)
        self.taken.append(Taken(c, at, NAME[op.code], op.addr, rstamp=rs, blocked=held, args=(op.a1, op.a2)))
        self.waits.add(c)

    @staticmethod
    def _eid(model: Any, ref: tuple[int, int] | None) -> int:
        """The event ``ref`` names in this execution (None: the initial write)."""
        return INIT if ref is None else model.po[ref[0]][ref[1]]

    def _deferred_revisits(self, model: Any) -> None:
        """The revisits of the writes re-added while replaying (FORWARD steps), each
        against the graph as it was when it was added: without the ones after it."""
        later = {t.weid for t in self.deferred}
        for t in self.deferred:
            e = model.events[t.weid]
            full = e.reads and model.kind(t.name) == RMW_FULL
            rf = model.events[t.reid].rf
            a = Writer(t.cpu, t.at, e.at, rf, t.value, t.rstamp, t.wstamp, t.loc, e.deps, e.op in RELEASES, full)
            self._revisits(RevisitGraph(model, self.taken, a, set(later)))
            later.discard(t.weid)
        self.deferred = []

    def _revisits(self, graph: RevisitGraph, conflict: Taken | None = None) -> None:
        for plan in graph.plans(conflict):
            plan.next_stamp = self.next_stamp
            self.work.append(plan)
        self.lb_refused += graph.refused
