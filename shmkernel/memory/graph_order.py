"""An execution graph and its consistency, kept as events are added.

`shmkernel.memory.graph` says what the graph model is and what consistent
means (an acyclic time order the machine could have gone through, and each
word sequentially consistent); this module keeps the graph (events, program
order, ``co``) with both orders' edges, adds an event with the edges it
brings, takes it back (`ExecutionGraph._undo`), and answers "did this event
close a cycle?" by a search from it alone: the graph before was acyclic, so a
new cycle goes through the new event. `ExecutionGraph.consistent_full`
rebuilds everything from scratch, to hold the incremental answer to it in
the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

INIT = -1  # the initial write of a word: first in its co, before every time point
ALL = -1  # the CPU of an event in every CPU's program order (`GraphModel.fence_all`)
OUTSIDE = -2  # the CPU of a write made outside the model (`GraphModel._sync_outside`)


@dataclass
class Event:
    """One event of one CPU. A read-modify-write that succeeded is one event that
    reads and writes; a failing one only reads; ``this_cpu_inc`` is two events."""

    cpu: int
    reads: bool
    writes: bool
    loc: int
    wval: int = 0  # the value written
    newest: bool = False  # a read that returns the newest value (not a lagging view)
    at_issue: bool = True  # happens at issue (a read, an atomic, a fence); a store at commit
    drains_sb: bool = False  # every earlier store of the CPU commits before it
    drains_view: bool = False  # later loads of the CPU see every store committed before it
    epoch: int = 0  # weak: write barriers before it on its CPU
    rf: int = INIT  # the write it reads (an event id, or INIT)
    rval: int = 0
    at: int = 0  # its place in its CPU's program order (OUTSIDE: among the outside writes)
    op: str = ""  # lkmm: the kernel primitive (its LKMM events and classes: `shmkernel.memory.graph_lkmm`)
    #: lkmm: the reads it depends on, by event id (address, data, control); None: not
    #: tracked, then every earlier read of its CPU counts as a control dependency
    deps: tuple[frozenset[int], frozenset[int], frozenset[int]] | None = None
    promised: tuple[int, int] | None = None  # lkmm: a read of a write its CPU's later events precede (load buffering)


class ExecutionGraph:
    """The events, program order, ``co``, and the two orders' edges of one execution."""

    name: str
    ncpus: int

    def reset_graph(self) -> None:
        n = self.ncpus
        self.events = []
        self.po = [[] for _ in range(n)]
        self.co = {}
        # what adding the next event of each CPU needs (`_edges`), kept as events are added
        self.last_exec = [-1] * n  # the CPU's last event that happened at issue
        self.view = [-1] * n  # its last view update
        self.stores: list[list[int]] = [[] for _ in range(n)]  # since the CPU's last drain
        self.newest_own: list[dict[int, int]] = [{} for _ in range(n)]
        self.last_loc: list[dict[int, int]] = [{} for _ in range(n)]
        self.reads_of: dict[int, list[int]] = {}
        self.frsrc: dict[int, int] = {}  # a read: what comes before the stores co-after its write
        self.tsucc: list[list[int]] = []  # the time order's edges (see the module docstring)
        self.csucc: list[list[int]] = []  # each word's coherence edges
        self.sync_chain: list[int] = []  # kernel synchronisation's fences, in schedule order
        self.outside = 0  # writes made outside the model so far

    def _new_node(self, e: Event) -> int:
        self.events.append(e)
        self.tsucc.append([])
        self.csucc.append([])
        return len(self.events) - 1

    def _append(self, e: Event, co_at: int, undo: list) -> int:
        """Add ``e`` (its write at ``co_at`` in its word's co): the event, its edges, and
        its CPU's state for the next one; what was done goes on ``undo`` (`_undo`)."""
        cpu = e.cpu
        eid = self._new_node(e)
        t, c = self._edges(eid, e, co_at)
        self._link(t, c)
        stores = self.stores[cpu]
        loc = e.loc
        saved = (
            self.last_exec[cpu],
            self.view[cpu],
            stores,
            len(stores),
            self.newest_own[cpu].get(loc),
            self.last_loc[cpu].get(loc),
        )
        undo.append((eid, t, c, saved))
        e.at = len(self.po[cpu])
        self.po[cpu].append(eid)
        if e.at_issue:
            self.last_exec[cpu] = eid
            if e.drains_sb:  # the stores before it are ordered before every later event of the CPU
                self.stores[cpu] = []
        if e.drains_view:
            self.view[cpu] = eid
        if loc >= 0:
            self.last_loc[cpu][loc] = eid
        if e.reads:
            self.reads_of.setdefault(loc, []).append(eid)
        if e.writes:
            self.stores[cpu].append(eid)
            self.newest_own[cpu][loc] = eid
            self.co.setdefault(loc, []).insert(co_at, eid)
        return eid

    def _link(self, t: list[tuple[int, int]], c: list[tuple[int, int]]) -> None:
        """Add time-order edges ``t`` and coherence edges ``c``."""
        for a, b in t:
            self.tsucc[a].append(b)
        for a, b in c:
            self.csucc[a].append(b)

    def _undo(self, undo: list) -> None:
        """Take back what `_append` did, newest first."""
        for eid, t, c, saved in reversed(undo):
            e = self.events[eid]
            cpu = e.cpu
            for a, _ in reversed(c):
                self.csucc[a].pop()
            for a, _ in reversed(t):
                self.tsucc[a].pop()
            self.last_exec[cpu], self.view[cpu], stores, n, newest, last = saved
            del stores[n:]
            self.stores[cpu] = stores
            for table, old in ((self.newest_own[cpu], newest), (self.last_loc[cpu], last)):
                if e.loc >= 0:
                    if old is None:
                        table.pop(e.loc, None)
                    else:
                        table[e.loc] = old
            self.po[cpu].pop()
            if e.reads:
                self.reads_of[e.loc].pop()
                self.frsrc.pop(eid, None)
            if e.writes:
                co = self.co[e.loc]
                co.remove(eid)
                if not co:
                    del self.co[e.loc]
            assert eid == len(self.events) - 1
            self.events.pop()
            self.tsucc.pop()
            self.csucc.pop()

    def _edges(self, eid: int, e: Event, co_at: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The time-order and coherence edges the new event ``eid`` of its CPU brings:
        every one of them touches it, so a cycle after adding it goes through it."""
        cpu, weak, tso, sc = e.cpu, self.name == "weak", self.name == "tso", self.name == "sc"
        t: list[tuple[int, int]] = []
        c: list[tuple[int, int]] = []
        last = self.last_exec[cpu]
        if last >= 0:
            t.append((last, eid))  # after the CPU's earlier events (a store: commits after its issue)
        stores = self.stores[cpu]
        if e.at_issue and e.drains_sb:
            t += [(st, eid) for st in stores]
        elif e.writes and not e.at_issue:
            ev = self.events
            t += [(st, eid) for st in stores if tso or ev[st].loc == e.loc or (weak and ev[st].epoch < e.epoch)]
        if e.loc >= 0:
            prev = self.last_loc[cpu].get(e.loc)
            if prev is not None:
                c.append((prev, eid))
        co = self.co.get(e.loc, [])
        if e.reads:
            own = self.newest_own[cpu].get(e.loc)
            if e.rf != INIT:
                c.append((e.rf, eid))
                if e.rf != own:
                    t.append((e.rf, eid))  # read after it committed
            if own is not None and e.rf != own:
                t.append((own, eid))  # the own store left the buffer first
            later = co[(0 if e.rf == INIT else co.index(e.rf) + 1) :]
            src = eid if (e.newest or sc) else self.view[cpu]
            self.frsrc[eid] = src
            if src >= 0:
                t += [(src, y) for y in later]
            c += [(eid, y) for y in later]
        if e.writes:
            wt, wc = self._write_edges(eid, e, co_at)
            t += wt
            c += wc
        return t, c

    def _write_edges(self, eid: int, e: Event, co_at: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """A write placed at ``co_at`` in its word's co: its co neighbours, and the reads
        of writes co-before it, which come before it (fr)."""
        co = self.co.get(e.loc, [])
        t: list[tuple[int, int]] = []
        c: list[tuple[int, int]] = []
        if co_at > 0:
            t.append((co[co_at - 1], eid))
            c.append((co[co_at - 1], eid))
        if co_at < len(co):
            t.append((eid, co[co_at]))
            c.append((eid, co[co_at]))
        before = set(co[:co_at])
        for r in self.reads_of.get(e.loc, ()):
            rf = self.events[r].rf
            if r != eid and (rf == INIT or rf in before):
                c.append((r, eid))
                src = self.frsrc.get(r, -1)
                if src >= 0:
                    t.append((src, eid))
        return t, c

    def _cycle_through(self, eid: int) -> bool:
        """Did adding ``eid`` close a cycle? Its edges touch it, except a lagging load's:
        its view update comes before the stores co-after the write it read."""
        if _reaches(self.csucc, self.csucc[eid], eid) or _reaches(self.tsucc, self.tsucc[eid], eid):
            return True
        src = self.frsrc.get(eid, eid)
        if src != eid and src >= 0:
            e = self.events[eid]
            co = self.co.get(e.loc, [])
            later = co[(0 if e.rf == INIT else co.index(e.rf) + 1) :]
            return _reaches(self.tsucc, later, src)
        return False

    # -- consistency ---------------------------------------------------------------------------
    def consistent_full(self) -> bool:
        """The whole graph checked from scratch (the tests hold the incremental check to it)."""
        return self._coherent() and _acyclic(len(self.events), self._time_edges())

    def _coherent(self) -> bool:
        """Each word alone is sequentially consistent (po-loc, rf, co, fr acyclic)."""
        edges: dict[int, list[int]] = {}
        pos = {}
        for ids in self.co.values():
            for i, x in enumerate(ids):
                pos[x] = i
                if i:
                    edges.setdefault(ids[i - 1], []).append(x)
        for ids in self.po:
            last: dict[int, int] = {}
            for x in ids:
                e = self.events[x]
                if e.loc < 0:
                    continue
                if e.loc in last:
                    edges.setdefault(last[e.loc], []).append(x)
                last[e.loc] = x
        for x, e in enumerate(self.events):
            if not e.reads:
                continue
            if e.rf != INIT:
                edges.setdefault(e.rf, []).append(x)
            co = self.co.get(e.loc, [])
            start = 0 if e.rf == INIT else pos[e.rf] + 1
            for y in co[start:]:
                if y != x:
                    edges.setdefault(x, []).append(y)
        return _acyclic(len(self.events), edges)

    def _time_edges(self) -> dict[int, list[int]]:
        ev, weak, tso, sc = self.events, self.name == "weak", self.name == "tso", self.name == "sc"
        edges: dict[int, list[int]] = {}

        def edge(a: int, b: int) -> None:
            edges.setdefault(a, []).append(b)

        pos = {x: i for ids in self.co.values() for i, x in enumerate(ids)}
        for ids in (*self.co.values(), self.sync_chain):
            for a, b in zip(ids, ids[1:], strict=False):
                edge(a, b)
        for ids in self.po:
            last_exec = -1
            view = -1  # the last view update
            stores: list[int] = []
            newest_own: dict[int, int] = {}
            for x in ids:
                e = ev[x]
                if e.at_issue:
                    if last_exec >= 0:
                        edge(last_exec, x)
                    last_exec = x
                    if e.drains_sb:
                        for s in stores:
                            edge(s, x)
                elif last_exec >= 0:
                    edge(last_exec, x)  # a store commits after its issue
                if e.writes and not e.at_issue:
                    for s in stores:
                        se = ev[s]
                        if tso or se.loc == e.loc or (weak and se.epoch < e.epoch):
                            edge(s, x)
                if e.reads:
                    own = newest_own.get(e.loc)
                    if e.rf != INIT and e.rf != own:
                        edge(e.rf, x)  # read after it committed
                    if own is not None and e.rf != own:
                        edge(own, x)  # the own store left the buffer first
                    later = self.co.get(e.loc, [])[(0 if e.rf == INIT else pos[e.rf] + 1) :]
                    src = x if (e.newest or sc) else view
                    if src >= 0:
                        for y in later:
                            if y != x:
                                edge(src, y)
                if e.drains_view:
                    view = x
                if e.writes:
                    stores.append(x)
                    newest_own[e.loc] = x
        return edges


def _reaches(succ: list[list[int]], start: list[int], goal: int) -> bool:
    """Is ``goal`` reachable from any of ``start`` along ``succ``?"""
    stack, seen = list(start), set()
    while stack:
        x = stack.pop()
        if x == goal:
            return True
        if x not in seen:
            seen.add(x)
            stack.extend(succ[x])
    return False


def _acyclic(n: int, edges: dict[int, list[int]]) -> bool:
    """Kahn's algorithm over nodes 0..n-1."""
    indeg = [0] * n
    for outs in edges.values():
        for b in outs:
            indeg[b] += 1
    stack = [i for i in range(n) if indeg[i] == 0]
    seen = 0
    while stack:
        a = stack.pop()
        seen += 1
        for b in edges.get(a, ()):
            indeg[b] -= 1
            if indeg[b] == 0:
                stack.append(b)
    return seen == n
