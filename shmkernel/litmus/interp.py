"""The interpreter behind `shmkernel.litmus.events.traces`: statements, expressions
and the kernel's primitives (``tools/memory-model/linux-kernel.def``, with the
events of ``Documentation/herd-representation.txt``)."""

from __future__ import annotations

from typing import Any

from shmkernel.errors import UsageError
from shmkernel.litmus.cparse import CProc
from shmkernel.litmus.events import DeadPath, Event, Term, Trace, V, combine, concrete_values
from shmkernel.litmus.primitives import PRIMITIVES, Prim


class Interp:
    def __init__(
        self, proc: CProc, reg_init: dict[str, Any], domains: dict[str, set], globals_: set[str], ch: Chooser
    ) -> None:
        self.proc, self.domains, self.globals, self.ch = proc, domains, globals_, ch
        self.regs: dict[str, V] = {r: V(v) for r, v in reg_init.items()}
        self.events: list[Event] = []
        self.guards: list[tuple[Term, Any]] = []
        self.read_locs: dict[int, str] = {}
        self.ctrl = 0
        self.lock_state: dict[str, str] = {}  # lock -> its process's last LKW/UL
        self.line = 0

    def error(self, msg: str) -> UsageError:
        return UsageError(f"{self.proc.path}:{self.line}: P{self.proc.index}: {msg}")

    def run(self) -> Trace:
        self.block(self.proc.body)
        return Trace(self.events, self.guards, dict(self.regs))

    # ---------------------------------------------------------------- statements

    def block(self, stmts: list[Any]) -> None:
        for s in stmts:
            k = s[0]
            if k == "block":
                self.block(s[1])
                continue
            self.line = s[-1]
            if k == "decl":
                self.regs[s[1]] = self.expr(s[2]) if s[2] is not None else V(0)
            elif k == "assign":
                lhs, rhs = s[1], s[2]
                val = self.expr(rhs)
                if lhs[0] == "name":  # a register (a parameter assigned becomes one, as in C)
                    self.regs[lhs[1]] = val
                else:
                    self.store(self.address(lhs[1]), val, ("Plain",))
            elif k == "expr":
                self.expr(s[1])
            elif k == "if":  # herd7's ctrl: the branch's own events, not those after the if
                c = self.expr(s[1])
                before = self.ctrl
                self.ctrl |= c.deps
                self.block(s[2] if self.truth(c) else s[3])
                self.ctrl = before

    # ---------------------------------------------------------------- values

    def concrete(self, v: V) -> Any:
        """``v``'s value, branching over what it may be (and guarding the choice)."""
        if isinstance(v.term, (int, str)):
            return v.term
        vals = concrete_values(v.term, self.read_locs, self.domains)
        if not vals:
            raise self.error("no value of this expression is possible")
        c = vals[self.ch.choose(len(vals))]
        self.guards.append((v.term, c))
        return c

    def truth(self, v: V) -> bool:
        """Which way a condition goes: both ways are tried whatever values the
        domains suggest (as herd7 does, solving for the values afterwards), so
        that a branch taken only on a value it itself causes is not missed."""
        if isinstance(v.term, (int, str)):
            return bool(v.term)
        taken = self.ch.choose(2) == 0
        self.guards.append((("op", "!=", v.term, 0), int(taken)))
        return taken

    def address(self, e: Any) -> V:
        """The location an address expression names (its term concrete)."""
        a = self.expr(e)
        loc = self.concrete(a)
        if not isinstance(loc, str):
            raise DeadPath  # an integer used as an address: no such execution
        return V(loc, a.deps)

    def lvalue(self, e: Any) -> V:
        """The location of an lvalue argument (``*x`` or a global's name)."""
        if e[0] == "deref":
            return self.address(e[1])
        if e[0] == "name" and e[1] in self.globals and e[1] not in self.regs:
            return V(e[1])
        raise self.error("expected a location such as *x")

    def expr(self, e: Any) -> V:
        k = e[0]
        if k == "num":
            return V(e[1])
        if k == "name":
            if e[1] in self.regs:
                return self.regs[e[1]]
            if e[1] in self.globals:
                return V(e[1])  # a parameter/global names its address
            return V(0)  # an undeclared register reads 0, as herd7's
        if k == "deref":
            return self.load(self.address(e[1]), ("Plain",))
        if k == "addrof":
            if e[1][0] == "deref":
                return self.expr(e[1][1])
            if e[1][0] == "name":
                return V(e[1][1])
            raise self.error("unsupported construct: address of an expression")
        if k == "un":
            a = self.expr(e[2])
            if isinstance(a.term, (int, str)):
                from shmkernel.litmus.events import unary

                try:
                    return V(unary(e[1], a.term), a.deps)
                except ValueError as err:
                    raise self.error(str(err)) from None
            return V(("un", e[1], a.term), a.deps)
        if k == "bin":
            try:
                return combine(e[1], self.expr(e[2]), self.expr(e[3]))
            except ValueError as err:
                raise self.error(str(err)) from None
        if k == "cond":
            c = self.expr(e[1])
            self.ctrl |= c.deps
            return self.expr(e[2] if self.truth(c) else e[3])
        if k == "call":
            self.line = e[3]
            prim = PRIMITIVES.get(e[1])
            if prim is None:
                raise self.error(f"unsupported primitive {e[1]}()")
            return self.call(prim, e[2])
        raise self.error(f"unsupported expression {k}")

    # ---------------------------------------------------------------- events

    def emit(self, ev: Event) -> int:
        ev.ctrl, ev.line = self.ctrl, self.line
        self.events.append(ev)
        return len(self.events) - 1

    def load(self, a: V, classes: tuple[str, ...]) -> V:
        k = self.emit(Event("R", a.term, classes, addr=a.deps))
        self.read_locs[k] = a.term
        return V(("rd", k), 1 << k)

    def store(self, a: V, v: V, classes: tuple[str, ...], rmw: int = -1) -> int:
        return self.emit(Event("W", a.term, classes, val=v.term, addr=a.deps, data=v.deps, rmw=rmw))

    def fence(self, cls: str) -> None:
        self.emit(Event("F", None, (cls,)))

    def call(self, p: Prim, args: list[Any]) -> V:
        if len(args) != p.nargs:
            raise self.error(f"{p.name}() takes {p.nargs} argument(s), found {len(args)}")
        return p.run(self, args)


class Chooser:
    """Replays a prefix of choices and extends it with first alternatives,
    recording how many there were: depth-first enumeration of a process's paths."""

    def __init__(self, prefix: list[int]) -> None:
        self.prefix, self.taken, self.counts = prefix, [], []

    def choose(self, n: int) -> int:
        k = len(self.taken)
        c = self.prefix[k] if k < len(self.prefix) else 0
        self.taken.append(c)
        self.counts.append(n)
        return c


def traces(proc: CProc, reg_init: dict[str, Any], domains: dict[str, set], globals_: set[str]) -> list[Trace]:
    """Every path of ``proc`` given the values each location may hold."""
    out: list[Trace] = []
    prefix: list[int] = []
    while True:
        ch = Chooser(prefix)
        it = Interp(proc, reg_init, domains, globals_, ch)
        try:
            out.append(it.run())
        except DeadPath:
            out.append(Trace(it.events, it.guards, dead=True))
        if len(out) > 100_000:
            raise UsageError(f"{proc.path}: more than 100,000 paths through P{proc.index}")
        # next prefix: the last choice point with an untried alternative
        k = len(ch.taken) - 1
        while k >= 0 and ch.taken[k] + 1 >= ch.counts[k]:
            k -= 1
        if k < 0:
            return out
        prefix = ch.taken[:k] + [ch.taken[k] + 1]
