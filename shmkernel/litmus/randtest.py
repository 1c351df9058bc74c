"""Random small C litmus tests, to hold TruSt under lkmm to the axiomatic engine.

`shmkernel.schedule.randprog` checks the searches against brute force over
the operational machines, which never buffer a load. Under lkmm trust
explores what the LKMM's axioms allow, load buffering included, and the
brute force for that is the axiomatic engine (`shmkernel.litmus.axiomatic`,
held to herd7's verdicts): every candidate execution of every path, each
checked against the axioms. A random test here is a few processes of
``READ_ONCE``/``WRITE_ONCE`` (of constants, or with a data dependency:
``r + 1``, ``1 + r * 0``), ``if`` on a register (a control dependency),
``smp_load_acquire``/``smp_store_release``, ``xchg`` and barriers (with
``atomics``, also ``cmpxchg`` that may fail, ``atomic_inc``
and statements inside a ``spin_lock`` section); its ``exists`` names every
register and its ``locations`` every variable, so both engines report whole
final states.
"""

from __future__ import annotations

import random

VARS = ("x", "y", "z")


def _stmt(
    rng: random.Random, regs: list[str], nvars: int, depth: int = 0, atomics: bool = False
) -> tuple[str, list[str]]:
    """One statement, and the registers it defines."""
    if atomics and rng.random() < 0.3:
        return _atomic_stmt(rng, regs, nvars, depth)
    v = VARS[rng.randrange(nvars)]
    k = rng.random()
    new = f"r{len(regs)}"
    if k < 0.32:
        load = "smp_load_acquire(" + v + ")" if rng.random() < 0.15 else f"READ_ONCE(*{v})"
        return f"{new} = {load};", [new]
    if k < 0.62 or not regs and k < 0.8:
        c = rng.randrange(1, 3)
        val = str(c)
        if regs and rng.random() < 0.4:
            r = rng.choice(regs)
            val = f"{r} + 1" if rng.random() < 0.5 else f"{c} + {r} * 0"
        if rng.random() < 0.15:
            return f"smp_store_release({v}, {val});", []
        return f"WRITE_ONCE(*{v}, {val});", []
    if k < 0.72 and regs and depth == 0:
        r = rng.choice(regs)
        inner, defined = _stmt(rng, regs, nvars, depth + 1)
        if defined:  # a register defined on one path only: keep it simple
            inner = f"WRITE_ONCE(*{v}, 2);"
        return f"if ({r} == {rng.randrange(2)}) {{ {inner} }}", []
    if k < 0.8:
        return f"{new} = xchg({v}, {rng.randrange(1, 3)});", [new]
    return rng.choice(("smp_mb();", "smp_wmb();", "smp_rmb();")), []


def _atomic_stmt(rng: random.Random, regs: list[str], nvars: int, depth: int) -> tuple[str, list[str]]:
    """An atomic that may fail (or always succeeds, ordering nothing), or a statement
    inside a lock's critical section: what orders, or fails to order, load buffering."""
    v = VARS[rng.randrange(nvars)]
    new = f"r{len(regs)}"
    k = rng.random()
    if k < 0.3:
        return f"{new} = cmpxchg({v}, {rng.randrange(2)}, {rng.randrange(1, 3)});", [new]
    if k < 0.65 or depth:
        return f"atomic_inc({v});", []
    inner, defined = _stmt(rng, regs, nvars, depth + 1, atomics=True)
    return f"spin_lock(l); {inner} spin_unlock(l);", defined


def random_litmus(
    rng: random.Random, nprocs: int = 2, nvars: int = 2, length: int = 3, shaped: bool = True, atomics: bool = False
) -> str:
    """A random C litmus test (the module docstring); ``shaped``: each process may
    start with loads, so that load buffering has a chance."""
    vs = VARS[:nvars]
    procs, cond = [], []
    for p in range(nprocs):
        regs: list[str] = []
        body = []
        for _ in range(rng.randint(0, 2) if shaped else 0):  # loads first: the LB shape
            v = VARS[rng.randrange(nvars)]
            body.append(f"r{len(regs)} = READ_ONCE(*{v});")
            regs.append(f"r{len(regs)}")
        for _ in range(rng.randint(1, length)):
            s, defined = _stmt(rng, regs, nvars, atomics=atomics)
            body.append(s)
            regs += defined
        decl = "".join(f"\tint {r};\n" for r in regs)
        params = ", ".join([f"int *{v}" for v in vs] + (["spinlock_t *l"] if atomics else []))
        procs.append(f"P{p}({params})\n{{\n{decl}\n" + "".join(f"\t{s}\n" for s in body) + "}\n")
        cond += [f"{p}:{r}=0" for r in regs]
    init = "".join(f"\tint {v};\n" for v in vs) + ("\tspinlock_t l;\n" if atomics else "")
    exists = " /\\ ".join(cond) if cond else f"{vs[0]}=0"
    return f"C random\n\n{{\n{init}}}\n\n" + "\n".join(procs) + f"\nlocations [{'; '.join(vs)}]\nexists ({exists})\n"
