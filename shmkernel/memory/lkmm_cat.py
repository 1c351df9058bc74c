"""The Linux-kernel memory model as herd7 evaluates it: the axioms of
``tools/memory-model/linux-kernel.cat``, ``linux-kernel.bell`` and ``lock.cat``
(the model set of Linux v6.8-v6.15, before ``lkmmv2``) checked on one candidate
execution graph.

An execution is a `Skeleton` (the events and what the program fixes: program
order, locations, dependencies, read-modify-write pairs, event classes) plus
the choices of the candidate: reads-from ``rf`` and coherence ``co``.
`Checker.prepare` computes everything that depends on the skeleton alone once;
`Checker.consistent` adds ``rf``/``co`` and checks, in the cat file's order,
``coherence``, ``atomic``, ``happens-before``, ``propagation``, ``rcu`` and
``plain-coherence``. Flags (data races, unmatched locks) do not exclude
executions in herd7 and are not computed.

Locks are encoded by value, which gives the candidate executions of
``lock.cat``: ``spin_lock`` is an LKR (an acquire read that must read 0)
paired by ``rmw`` with an LKW writing 1, ``spin_unlock`` a UL (a release
write of 0), a failed ``spin_trylock`` an LF reading 1 (from some LKW),
``spin_is_locked`` an RL (read 1) or RU (read 0). Coherence and atomicity then
place each UL right after its LKW in ``co``, as ``lock.cat``'s
``co = (co | critical | critical^-1 ; co)+`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shmkernel.memory.relations import (
    Rel,
    acyclic,
    cross,
    domain,
    identity,
    inter,
    inverse,
    irreflexive,
    is_empty,
    minus,
    opt,
    range_of,
    restrict,
    seq,
    star,
    union,
)

#: event classes a skeleton may set (herd7's names, lock.cat's and the bell's)
CLASSES = (
    "R W F IW Once Acquire Release Noreturn RMW Plain LKR LKW UL LF RL RU Srcu-lock Srcu-unlock Sync-srcu "
    "Mb Rmb Wmb Rcu-lock Rcu-unlock Sync-rcu Before-atomic After-atomic After-spinlock After-unlock-lock "
    "After-srcu-read-unlock Barrier"
).split()


@dataclass
class Skeleton:
    """The events of an execution and what the program fixes about them."""

    n: int
    thread: list[int]  # -1 for the initial writes
    loc: list[str | None]  # accesses and SRCU events have one
    sets: dict[str, int] = field(default_factory=dict)  # class -> bitmask
    rmw: Rel = field(default_factory=list)
    addr: Rel = field(default_factory=list)
    data: Rel = field(default_factory=list)
    ctrl: Rel = field(default_factory=list)

    def s(self, name: str) -> int:
        return self.sets.get(name, 0)


class Checker:
    """The LKMM's axioms on candidates sharing one `Skeleton`."""

    def __init__(self, sk: Skeleton) -> None:
        self.sk = sk
        n, s = sk.n, sk.s
        self.n = n
        full = (1 << n) - 1
        self.R, self.W = s("R"), s("W")
        self.M = self.R | self.W
        self.po = [0] * n
        by_thread: dict[int, list[int]] = {}
        for i, t in enumerate(sk.thread):
            if t >= 0:
                by_thread.setdefault(t, []).append(i)
        for evs in by_thread.values():
            for k, i in enumerate(evs):
                for j in evs[k + 1 :]:
                    self.po[i] |= 1 << j
        same = {}
        for i, t in enumerate(sk.thread):
            same[t] = same.get(t, 0) | 1 << i
        self.int = [same[t] if t >= 0 else (1 << i) for i, t in enumerate(sk.thread)]
        self.ext = [full & ~row for row in self.int]
        locs: dict[str, int] = {}
        for i, lc in enumerate(sk.loc):
            if lc is not None:
                locs[lc] = locs.get(lc, 0) | 1 << i
        self.locrel = [locs[lc] if lc is not None else 0 for lc in sk.loc]
        self.po_loc = inter(self.po, self.locrel)
        self.rmw = sk.rmw or [0] * n
        self.marked = (
            (full & ~self.M)
            | s("IW")
            | s("Once")
            | s("Release")
            | s("Acquire")
            | domain(self.rmw)
            | range_of(self.rmw)
            | s("LKR")
            | s("LKW")
            | s("UL")
            | s("LF")
            | s("RL")
            | s("RU")
            | s("Srcu-lock")
            | s("Srcu-unlock")
        )
        self.plain = self.M & ~self.marked
        self._static()

    def fencerel(self, cls: int) -> Rel:
        """herd7's ``fencerel(B)``: ``po ; [B] ; po``."""
        return seq(restrict(self.po, rng=cls), self.po)

    def _static(self) -> None:
        sk, M, po = self.sk, self.M, self.po
        s = sk.s
        self.release = s("Release") | s("UL")
        self.acquire = s("Acquire") | s("LKR")
        self.acq_po = restrict(po, self.acquire, M)
        self.po_rel = restrict(po, M, self.release)
        r4rmb = self.R & ~s("Noreturn")
        self.r4rmb = r4rmb
        self.rmb = restrict(self.fencerel(s("Rmb")), r4rmb, r4rmb)
        self.wmb = restrict(self.fencerel(s("Wmb")), self.W, self.W)
        rmwset = s("RMW")
        pq = opt(po)
        self.mb_static = union(
            restrict(self.fencerel(s("Mb")), M, M),
            seq(restrict(self.fencerel(s("Before-atomic")), M, rmwset), restrict(pq, rng=M)),
            seq(restrict(pq, M, rmwset), restrict(self.fencerel(s("After-atomic")), rng=M)),
            seq(restrict(pq, M, s("LKW")), restrict(self.fencerel(s("After-spinlock")), rng=M)),
            seq(restrict(po, M, s("Srcu-unlock")), restrict(self.fencerel(s("After-srcu-read-unlock")), rng=M)),
        )
        self.gp = seq(restrict(po, rng=s("Sync-rcu") | s("Sync-srcu")), pq)
        self.rcu_rscs = self._rcu_rscs()
        self.data0 = sk.data or [0] * self.n
        self.addr0 = sk.addr or [0] * self.n
        self.ctrl0 = sk.ctrl or [0] * self.n

    def _rcu_rscs(self) -> Rel:
        """The bell's matching of nested rcu_read_lock/unlock, per thread in po order."""
        out = [0] * self.n
        lock, unlock = self.sk.s("Rcu-lock"), self.sk.s("Rcu-unlock")
        stacks: dict[int, list[int]] = {}
        for i in range(self.n):  # events are numbered in po order within a thread
            t = self.sk.thread[i]
            if lock >> i & 1:
                stacks.setdefault(t, []).append(i)
            elif unlock >> i & 1 and stacks.get(t):
                out[stacks[t].pop()] |= 1 << i
        return out

    def consistent(self, rf: Rel, co: Rel) -> bool:
        """Does the candidate (``rf``, ``co``: ``co`` transitive) satisfy the LKMM?"""
        return self.violation(rf, co) is None

    def violation(self, rf: Rel, co: Rel, keep: bool = False) -> str | None:
        """The first axiom (the cat file's name for it) the candidate breaks, or
        None. With ``keep`` the named relations it computed stay in ``parts``
        (for an explanation: the cycle and what each of its edges is)."""
        n, sk, po = self.n, self.sk, self.po
        fr = minus(seq(inverse(rf), co), identity(n))
        com = union(rf, co, fr)
        coherence = union(self.po_loc, com)
        parts = self.parts = (
            {"po-loc": self.po_loc, "rf": rf, "co": co, "fr": fr, "coherence": coherence} if keep else None
        )
        if not acyclic(coherence):
            return "coherence"
        rfe, rfi = inter(rf, self.ext), inter(rf, self.int)
        coe, fre = inter(co, self.ext), inter(fr, self.ext)
        if not is_empty(inter(self.rmw, seq(fre, coe))):
            return "atomic"
        marked, W, s = self.marked, self.W, sk.s
        # the bell: dependencies carried through plain (and marked) rfi
        carry = star(seq(restrict(self.data0, rng=~s("Srcu-unlock")), rfi))
        addr, data, ctrl = seq(carry, self.addr0), seq(carry, self.data0), seq(carry, self.ctrl0)
        mb = union(
            self.mb_static,
            seq(
                restrict(po, self.M, s("UL")),
                restrict(union(co, po), rng=s("LKW")),
                restrict(self.fencerel(s("After-unlock-lock")), rng=self.M),
            ),
        )
        strong = union(mb, self.gp)
        nonrw = union(strong, self.po_rel, self.acq_po)
        fence = union(nonrw, self.wmb, self.rmb)
        po_unlock_lock_po = seq(restrict(po, rng=s("UL")), restrict(union(po, rf), rng=s("LKR")), po)
        dep = union(addr, data)
        overwrite = union(co, fr)
        to_w = union(
            restrict(union(dep, ctrl), rng=W), inter(overwrite, self.int), seq(restrict(addr, rng=self.plain), self.wmb)
        )
        to_r = union(restrict(addr, rng=self.R), seq(restrict(dep, rng=marked), rfi))
        ppo = union(to_r, to_w, fence, inter(po_unlock_lock_po, self.int))
        rfe_m = opt(restrict(rfe, rng=marked))
        rmw_seq = star(seq(rf, self.rmw))
        cumul = seq(
            restrict(union(seq(rfe_m, union(strong, self.po_rel)), self.wmb, po_unlock_lock_po), marked, marked),
            rmw_seq,
        )
        prop = seq(
            restrict(opt(inter(overwrite, self.ext)), dom=marked), star(cumul), restrict(opt(rfe), marked, marked)
        )
        prop_int = inter(minus(prop, identity(n)), self.int)
        hb = restrict(union(ppo, rfe, prop_int), marked, marked)
        if parts is not None:
            parts.update(
                {"rfe": rfe, "fre": fre, "coe": coe, "mb": mb, "gp": self.gp, "wmb": self.wmb, "rmb": self.rmb}
                | {"acq-po": self.acq_po, "po-rel": self.po_rel, "addr": addr, "data": data, "ctrl": ctrl}
                | {"to-r": to_r, "overwrite-int": inter(overwrite, self.int), "po-unlock-lock-po": po_unlock_lock_po}
                | {"cumul-fence": cumul, "prop": prop, "happens-before": hb, "rmw": self.rmw}
            )
        if not acyclic(hb):
            return "happens-before"
        hbs = star(hb)
        pb = restrict(seq(prop, strong, hbs), rng=marked)
        if parts is not None:
            parts["propagation"] = pb
        if not acyclic(pb):
            return "propagation"
        pbs = star(pb)
        rb = self._rb(prop, hbs, pbs, rf, data, full=bool(self.plain))
        if rb is False or isinstance(rb, list) and not irreflexive(rb):
            return "rcu"
        if self.plain and not self._plain_coherent(
            rf, co, fr, hb, pb, rb, fence, nonrw, strong, addr, cumul, rfe, rmw_seq
        ):
            return "plain-coherence"
        return None

    def _rb(self, prop: Rel, hbs: Rel, pbs: Rel, rf: Rel, data: Rel, full: bool) -> Rel | bool | None:
        """The ``rcu`` axiom: the recursive ``rcu-order`` and ``rb``. None when the
        test has no grace period. Every use of ``rcu-link`` goes from a grace
        period or critical-section end to another, so it is computed on those
        few rows only. With ``full`` the whole ``rb`` (plain accesses need it
        in ``xbstar``); else whether ``rb`` is irreflexive, checked by rotating
        the cycle to start at a grace period or critical section."""
        s, po, n = self.sk.s, self.po, self.n
        gp_r, gp_s = s("Sync-rcu"), s("Sync-srcu")
        if not (gp_r or gp_s):
            return None
        srcu_rscs = self._srcu_rscs(rf)
        rcu_gp, srcu_gp = identity(n, gp_r), identity(n, gp_s)
        rscsi, srscsi = inverse(self.rcu_rscs), inverse(srcu_rscs)
        ends = gp_r | gp_s | domain(self.rcu_rscs) | range_of(self.rcu_rscs) | domain(srcu_rscs) | range_of(srcu_rscs)
        link = seq(restrict(opt(po), dom=ends), hbs, pbs, prop, restrict(po, rng=ends))
        loc = self.locrel
        order = union(rcu_gp, srcu_gp)
        while True:
            fl = seq(link, order, link)
            nxt = union(
                rcu_gp,
                srcu_gp,
                seq(rcu_gp, link, rscsi),
                inter(seq(srcu_gp, link, srscsi), loc),
                seq(rscsi, link, rcu_gp),
                inter(seq(srscsi, link, srcu_gp), loc),
                seq(rcu_gp, fl, rscsi),
                inter(seq(srcu_gp, fl, srscsi), loc),
                seq(rscsi, fl, rcu_gp),
                inter(seq(srscsi, fl, srcu_gp), loc),
                seq(order, link, order),
            )
            if nxt == order:
                break
            order = nxt
        self.rcu_order = order
        if full:
            return restrict(seq(prop, po, order, opt(po), hbs, pbs), rng=self.marked)
        back = seq(restrict(opt(po), dom=range_of(order)), hbs, restrict(pbs, rng=self.marked), prop, po)
        return irreflexive(seq(order, back))

    def _srcu_rscs(self, rf: Rel) -> Rel:
        s = self.sk.s
        lock, unlock = s("Srcu-lock"), s("Srcu-unlock")
        if not lock:
            return [0] * self.n
        carry = star(seq(restrict(self.data0, rng=~unlock), rf))
        return inter(restrict(seq(carry, self.data0), lock, unlock), self.locrel)

    def _plain_coherent(self, rf, co, fr, hb, pb, rb, fence, nonrw, strong, addr, cumul, rfe, rmw_seq) -> bool:  # noqa: ANN001
        """The cat's ``plain-coherence`` axiom (only tests with plain accesses pay
        for it). After the RCU section ``fence`` and ``strong-fence`` include
        ``rcu-fence``; ``nonrw-fence`` keeps its earlier value (cat's ``let``)."""
        n, s, marked, po = self.n, self.sk.s, self.marked, self.po
        xbstar = star(union(hb, pb, rb) if isinstance(rb, list) else union(hb, pb))
        if isinstance(rb, list):
            rcu_fence = seq(po, self.rcu_order, opt(po))
            fence, strong = union(fence, rcu_fence), union(strong, rcu_fence)
        mk = identity(n, marked)
        vis = seq(star(cumul), opt(rfe), mk, union(seq(strong, mk, xbstar), inter(xbstar, self.int)))
        nonret = ~s("Noreturn")
        rmb_f = self.fencerel(s("Rmb"))
        w_pre = restrict(opt(union(addr, fence)), dom=marked)
        r_pre = restrict(opt(union(addr, nonrw, restrict(rmb_f, self.r4rmb, nonret))), dom=marked)
        w_post = seq(restrict(opt(fence), rng=marked), rmw_seq)
        r_post = restrict(opt(union(nonrw, restrict(rmb_f, nonret, self.r4rmb))), rng=marked)
        strong_xb = seq(strong, xbstar)
        ww_vis = union(fence, seq(strong_xb, w_pre), seq(w_post, vis, w_pre))
        wr_vis = union(fence, seq(strong_xb, r_pre), seq(w_post, vis, r_pre))
        rw_xbstar = union(fence, seq(r_post, xbstar, w_pre))
        M, IW, plain = self.M, s("IW"), self.plain
        pre_race = inter(self.ext, union(cross(plain, M, n), cross(M & ~IW, plain, n)))
        bad = union(
            inter(inter(pre_race, rf), inverse(rw_xbstar)),
            inter(inter(pre_race, fr), inverse(wr_vis)),
            inter(inter(pre_race, co), inverse(ww_vis)),
        )
        return is_empty(bad)
