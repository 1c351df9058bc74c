"""Load buffering (LB+poonceonces): each CPU loads one word, then stores the other.

The LKMM lets a store pass an earlier load of its CPU when nothing orders them:
both loads may then read the other CPU's later store (r0 = r1 = 1). A data
dependency on each side (the stored value computed from the loaded one, as
``1 + r * 0`` is) forbids it. Only ``lkmm`` buffers loads; the operational
models and the hardware here never do.

    shmkernel explore examples/lb.py --memory-model lkmm                  # FOUND load_buffering
    shmkernel explore examples/lb.py --memory-model lkmm --variant fixed  # PROVED
"""

from shmkernel.workload.scenario import Scenario

lb = Scenario(
    "lb", events=("load_buffering",), variants={"buggy": "no dependency", "fixed": "a data dependency on each side"}
)
lb.scalar("x")
lb.scalar("y")
lb.scalar("r0")
lb.scalar("r1")


def _store(ctx, word, loaded, variant):
    ctx.write_once(word, 1 if variant == "buggy" else 1 + loaded * 0)


@lb.cpu(0)
def p0(ctx, v, variant):
    r0 = ctx.read_once(v.x)
    _store(ctx, v.y, r0, variant)
    ctx.write_once(v.r0, r0)


@lb.cpu(1)
def p1(ctx, v, variant):
    r1 = ctx.read_once(v.y)
    _store(ctx, v.x, r1, variant)
    ctx.write_once(v.r1, r1)


@lb.check
def both_read_the_later_store(ctx, v, variant):
    if ctx.oracle_read(v.r0) == 1 and ctx.oracle_read(v.r1) == 1:
        ctx.event("load_buffering")
