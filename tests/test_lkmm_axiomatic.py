"""The axiomatic LKMM engine (``litmus --memory-model lkmm``) against herd7's
verdicts, its candidate pruning against brute force, and the operational
``lkmm`` model against it (never an outcome the axioms forbid)."""

from __future__ import annotations

import itertools
import math
import os
import random

import pytest
from corpus import KERNEL, PAULMCK, herd7_verdicts, kernel_expected

from shmkernel.errors import UsageError
from shmkernel.litmus import axiomatic as ax
from shmkernel.litmus.cparse import parse_c_litmus
from shmkernel.litmus.outcomes import Outcomes, key_text
from shmkernel.litmus.runner import run_file
from shmkernel.litmus.verdict import NoVerdict, lkmm_verdict
from shmkernel.memory.lkmm_cat import Checker


def test_the_kernels_26_tests_all_agree_load_buffering_included():
    expected = kernel_expected()
    assert len(expected) == 26
    for name, verdict in sorted(expected.items()):
        v = lkmm_verdict(os.path.join(KERNEL, name + ".litmus"))
        assert v.observation == verdict, (name, v.format())


#: one or more corpus tests per construct family: (path in the paulmck corpus, why it is here)
FAMILIES = {
    "manual/kernel/C-RW-G+RW-C.litmus": "RCU grace period against a read-side critical section",
    "manual/kernel/MP-o-sync-o+rl-o-ctl-o-rul.litmus": "RCU: MP across a grace period",
    "manual/kernel/C-srcu-nest-1.litmus": "SRCU nesting",
    "manual/kernel/C-srcu-mb-1.litmus": "SRCU without a barrier: allowed",
    "manual/kernel/C-srcu-mb-2.litmus": "SRCU with smp_mb__after_srcu_read_unlock",
    "manual/extra/C-mp+o-assign+deref-addr-o.litmus": "rcu_assign_pointer / rcu_dereference, address dependency",
    "manual/extra/C-lb+o-assign+deref-o.litmus": "LB through a pointer: allowed",
    "manual/kernel/C-PPOCA.litmus": "ctrl, rfi, addr: not ppo (PPOCA)",
    "manual/demo/C-LB+o-o+o-o.litmus": "load buffering: allowed",
    "manual/lwn573436/C-lb+o-mb-o+o-rmb-o.litmus": "load buffering, smp_rmb does not order a load before a store",
    "manual/extra/C-lb+o-assign+o-assign.litmus": "load buffering with releases: forbidden",
    "manual/demo/C-LB+ldref-o+o-ctrl-o+o-dep-o.litmus": "load buffering with a dependency on each side: forbidden",
    "manual/demo/C-LB+ldref-o+o-o+o-dep-o.litmus": "the same with one side's dependency removed: allowed",
    "manual/deps/LB-addr-equals.litmus": "load buffering against address dependencies: forbidden",
    "manual/kernel/C-MPrelseq+o-r+rmwinc+a-o.litmus": "release sequence through an RMW (rmw-sequence)",
    "manual/demo/C-atomicpo.litmus": "relaxed atomics are not ordered",
    "manual/locked/SUW+or-ow+la-ow-or.litmus": "xchg_acquire is not a lock",
    "manual/locked/SUW+or-ow+l-ow-or.litmus": "a lock is",
    "manual/kernel/WRC-unlock-lock.litmus": "unlock+lock is not A-cumulative for a third CPU",
    "manual/demo/C-WWC+o+acq-o+acq-o.litmus": "coherence order not fixed at first read",
    "manual/kernel/after-unlock-lock-same-cpu.litmus": "smp_mb__after_unlock_lock",
    "manual/locked/CoWW+sil-lock-sil-unlock-sil.litmus": "spin_is_locked (lock.cat's two sources for an RU)",
    "manual/atomic/C-trylock2.litmus": "spin_trylock",
    "manual/atomic/C-atomic-02.litmus": "cmpxchg",
    "manual/atomic/C-atomic-04.litmus": "atomic_add_unless",
    "manual/atomic/C-atomic-add-unless-mb.litmus": "atomic_add_unless orders when it succeeds",
    "manual/demo/C-locktest-filter.litmus": "filter clause",
    "manual/plain/strong-vis.litmus": "plain accesses: strong-fence ; xbstar visibility",
    "manual/plain/C-OOTA.litmus": "plain thin air: herd7 keeps the unsolved values",
}


@pytest.mark.parametrize("path", sorted(FAMILIES))
def test_construct_families_against_herd7(path):
    want = herd7_verdicts()[path]
    v = lkmm_verdict(os.path.join(PAULMCK, path))
    assert v.observation == want, (FAMILIES[path], v.format())


def test_a_fixed_sample_of_the_corpus_agrees_with_herd7():
    verdicts = herd7_verdicts()
    assert len(verdicts) == 1305
    slow = ("absperf", "C-RW-G+RW-G+RW-R", "C-RW-R+RW-R+RW-G", "C-RR-G+RR", "seqlock", "locked/")
    sample = [t for t in sorted(verdicts)[::19] if not any(s in t for s in slow)]
    assert len(sample) >= 50
    bad = []
    for t in sample:
        got = lkmm_verdict(os.path.join(PAULMCK, t)).observation
        if got != verdicts[t]:
            bad.append((t, verdicts[t], got))
    assert not bad


# ------------------------------------------------------------ operational vs axiomatic

#: small corpus tests the operational runner reads, LB shapes included
OPERATIONAL_SAMPLE = [
    os.path.join(KERNEL, "LB+poonceonces.litmus"),
    os.path.join(KERNEL, "MP+poonceonces.litmus"),
    os.path.join(KERNEL, "IRIW+poonceonces+OnceOnce.litmus"),
    os.path.join(KERNEL, "Z6.0+pooncerelease+poacquirerelease+fencembonceonce.litmus"),
    os.path.join(KERNEL, "WRC+pooncerelease+fencermbonceonce+Once.litmus"),
    os.path.join(KERNEL, "cmpxchg-fail-unordered-1.litmus"),
    os.path.join(PAULMCK, "manual/locked/SUW+or-ow+l-ow-or.litmus"),
    os.path.join(PAULMCK, "manual/kernel/C-AlanStern-WRC+o-unlock+lock-o.litmus"),
    os.path.join(PAULMCK, "manual/kernel/C-MPrelseq+o-r+rmwinc+a-o.litmus"),  # was a false alarm
    os.path.join(PAULMCK, "manual/demo/C-atomicpo.litmus"),
    os.path.join(PAULMCK, "manual/kernel/WRC-unlock-lock.litmus"),
]


def _flat(key: tuple) -> frozenset:
    return frozenset((k if isinstance(k, str) else key_text(k), v) for k, v in key)


@pytest.mark.parametrize("path", OPERATIONAL_SAMPLE, ids=os.path.basename)
def test_the_operational_lkmm_model_shows_nothing_the_axioms_forbid(path):
    herd7_verdicts()  # the corpora must be there (or the skip is said)
    allowed = {_flat(k) for k in lkmm_verdict(path).res.outcomes.states}
    seen = {_flat(k) for k in run_file(path, "lkmm").states}
    assert seen and seen <= allowed, sorted(map(sorted, seen - allowed))


# ------------------------------------------------------------ pruning vs brute force

_OPS = [
    "WRITE_ONCE(*{x}, {v});",
    "r{r} = READ_ONCE(*{x});",
    "smp_store_release({x}, {v});",
    "r{r} = smp_load_acquire({x});",
    "smp_mb();",
    "smp_wmb();",
    "smp_rmb();",
    "r{r} = xchg_relaxed({x}, {v});",
    "atomic_inc({x});",
    "r{r} = cmpxchg({x}, 0, {v});",
    "if (r{r0} == 1) WRITE_ONCE(*{x}, {v});",
    "WRITE_ONCE(*{x}, r{r0} + 1);",
    "spin_lock(l); WRITE_ONCE(*{x}, {v}); spin_unlock(l);",
    "*{x} = {v};",
]


def random_program(rng: random.Random, k: int) -> str:
    procs = []
    for p in range(rng.randint(2, 3)):
        lines, regs = [], 0
        for _ in range(rng.randint(1, 3)):
            op = rng.choice(_OPS)
            lines.append(op.format(x=rng.choice("xy"), v=rng.randint(1, 2), r=regs, r0=max(regs - 1, 0)))
            regs += "r{r}" in op
        decl = "".join(f"int r{i} = 0; " for i in range(max(regs, 1)))
        procs.append(f"P{p}(int *x, int *y, spinlock_t *l) {{ {decl}{' '.join(lines)} }}")
    return f"C rand{k}\n{{}}\n" + "\n".join(procs) + "\nexists (x=1)\nlocations [x; y; 0:r0; 1:r0]\n"


def brute_force(test) -> set:
    """Every rf (any store to the location) and every co (any order, init first):
    no pruning at all, the same axioms."""
    _, all_traces = ax.domains_and_traces(test)
    out = Outcomes(test)
    for combo in itertools.product(*all_traces):
        b = ax.build(test, combo)
        checker = Checker(b.sk)
        locs = sorted(b.locs)
        cos = [[[ws[0], *perm] for perm in itertools.permutations(ws[1:])] for ws, _ in (b.locs[x] for x in locs)]
        reads = [r for x in locs for r in b.locs[x][1]]
        srcs = [b.locs[b.sk.loc[r]][0] for r in reads]
        for order in itertools.product(*cos):
            co = [0] * b.sk.n
            for ws in order:
                for i, w in enumerate(ws):
                    for later in ws[i + 1 :]:
                        co[w] |= 1 << later
            for pick in itertools.product(*srcs):
                rf = dict(zip(reads, pick, strict=True))
                vals = ax.resolve(b, rf)
                if vals is None or not all(ax._holds(g, v, vals) for g, v in b.guards):
                    continue
                if checker.consistent(ax._rel(rf, b.sk.n), co):
                    out.add(b, vals, {x: ws[-1] for x, ws in zip(locs, order, strict=True)})
    return set(out.states)


def brute_force_size(test) -> int:
    """How many candidates `brute_force` would check (to keep the test's programs small)."""
    _, all_traces = ax.domains_and_traces(test)
    total = 0
    for combo in itertools.product(*all_traces):
        b = ax.build(test, combo)
        size = 1
        for ws, rs in b.locs.values():
            size *= math.factorial(len(ws) - 1) * len(ws) ** len(rs)
        total += size
    return total


@pytest.mark.slow  # 2.5 s
def test_candidate_pruning_matches_brute_force_on_random_programs(tmp_path):
    rng = random.Random(2026)
    checked = k = 0
    while checked < 300:
        k += 1
        p = tmp_path / f"rand{k}.litmus"
        p.write_text(random_program(rng, k))
        test = parse_c_litmus(str(p))
        if brute_force_size(test) > 3000:
            continue
        assert set(ax.run_axiomatic(test).outcomes.states) == brute_force(test), p.read_text()
        checked += 1


# ------------------------------------------------------------ the front end


def test_the_herd7_forms_the_corpus_uses(tmp_path):
    p = tmp_path / "forms.litmus"
    p.write_text(
        'C "forms test" some free text\n"a quoted description"\nCycle=Rfe PodRR\n(* a {comment} *)\n'
        "{\n  int *p = &u; a=x; atomic_t v = ATOMIC_INIT(2); 0:r2=y; int 1:r1;\n}\n\n"
        "P0(int *u, int **p, int *x, int *y) // a comment\n{\n  intptr_t r1 = (intptr_t)READ_ONCE(*p);\n"
        "  int *r3 = (int *)r2;\n  WRITE_ONCE(*r3, 1);\n  r4 = READ_ONCE(*(int *)r1);\n}\n"
        "P1(atomic_t *v, int *x) {\n  /* block */ r1 = atomic_dec_and_test(v);\n  if (r1) { WRITE_ONCE(*x, 2); }\n}\n"
        "locations [u; 1:r1]\nfilter (1:r1=0 \\/ 1:r1=1)\nforall (~(0:r1=x) -> 0:r4=0) /\\ (1:r1=1:r1)\n"
    )
    t = parse_c_litmus(str(p))
    assert t.name == "forms" and t.quantifier == "forall" and len(t.procs) == 2
    assert t.init["p"] == ("addr", "u") and t.init["a"] == ("addr", "x") and t.init["v"] == 2
    v = lkmm_verdict(str(p))
    assert v.observation == "Always", v.format()


@pytest.mark.parametrize(
    "body,needle",
    [
        ("while (1) { }", r":4: unsupported construct 'while'"),
        ("frobnicate(x);", r":4: P0: unsupported primitive frobnicate\(\)"),
        ("r1 = x[1];", r":4: unsupported construct: x\[\.\.\. \(fields and arrays\)"),
        ("WRITE_ONCE(*x, 1, 2);", r":4: P0: WRITE_ONCE\(\) takes 2 argument"),
    ],
)
def test_unsupported_constructs_are_one_line_errors_naming_the_line(tmp_path, body, needle):
    p = tmp_path / "bad.litmus"
    p.write_text(f"C bad\n{{}}\nP0(int *x) {{\n  {body}\n}}\nexists (x=1)\n")
    with pytest.raises(UsageError, match=needle) as e:
        lkmm_verdict(str(p))
    assert "\n" not in str(e.value)


def test_a_spent_budget_is_no_verdict_not_never(tmp_path):
    with pytest.raises(NoVerdict, match="more than 3 candidate executions") as e:
        lkmm_verdict(os.path.join(KERNEL, "IRIW+poonceonces+OnceOnce.litmus") if kernel_expected() else "", budget=3)
    assert e.value.exit_code == 4


def test_the_repositorys_own_litmus_tests_get_the_operational_lkmm_verdicts_too():
    """tests/litmus (seed 000's hand-offs included): the axiomatic engine and
    the operational lkmm model agree where neither needs load buffering."""
    from test_litmus import CLASSIC, HERE

    for name, verdicts in CLASSIC.items():
        v = lkmm_verdict(os.path.join(HERE, name + ".litmus"))
        assert v.observation == verdicts[3], (name, v.format())
