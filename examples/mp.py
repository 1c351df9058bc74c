"""Message passing: a flag published after the data, read before it.

Without barriers a weakly ordered CPU may see the flag and still the old data;
``smp_wmb()`` on the writer and ``smp_rmb()`` on the reader forbid it. x86
(and ``native``) never shows it: ask for a weak memory model.

    shmkernel explore examples/mp.py --memory-model weak                  # FOUND stale_data
    shmkernel explore examples/mp.py --memory-model weak --variant fixed  # PROVED
"""

from shmkernel.workload.scenario import Scenario

mp = Scenario("mp", events=("stale_data",), variants={"buggy": "no barriers", "fixed": "smp_wmb/smp_rmb"})
mp.scalar("data")
mp.scalar("flag")


@mp.cpu(0)
def publish(ctx, v, variant):
    ctx.write_once(v.data, 42)
    if variant == "fixed":
        ctx.smp_wmb()
    ctx.write_once(v.flag, 1)


@mp.cpu(1)
def consume(ctx, v, variant):
    if ctx.read_once(v.flag):
        if variant == "fixed":
            ctx.smp_rmb()
        if ctx.read_once(v.data) != 42:
            ctx.event("stale_data")
