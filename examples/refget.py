"""A reference get that checks, then acts: ``if (atomic_read(&r)) atomic_inc(&r)``
against ``atomic_inc_not_zero(&r)``, while the owner drops the last reference.

    shmkernel explore examples/refget.py          # FOUND use_after_free (buggy)
    shmkernel explore examples/refget.py --variant fixed    # PROVED
    shmkernel run examples/refget.py --seconds 1  # rates per million rounds
"""

from shmkernel.workload.scenario import Scenario

race = Scenario("refget", events=("use_after_free",))
race.scalar("refs", 1)  # one reference: the owner's
race.scalar("freed")


@race.cpu(0)
def get_and_use(ctx, v, variant):
    if variant == "buggy":
        got = ctx.atomic_read(v.refs) != 0
        if got:
            ctx.atomic_inc(v.refs)
    else:
        got = ctx.atomic_inc_not_zero(v.refs)
    if got and ctx.read_once(v.freed):
        ctx.event("use_after_free")


@race.cpu(1)
def put_last(ctx, v, variant):
    if ctx.atomic_dec_and_test(v.refs):
        ctx.write_once(v.freed, 1)
