"""Seed 004: concurrent static_key_slow_inc() lets a vCPU run unpatched code (``static-key``).

The seed's reproducer is several copies of a loop that creates a KVM VM and a
vCPU with userspace LAPIC emulation, then closes both. Every such vCPU does
``static_key_slow_inc(&kvm_no_apic_vcpu)``; KVM's ``lapic_in_kernel()`` then
tests the key with ``static_key_false()`` to skip the NULL-APIC check while no
vCPU without an in-kernel APIC exists. If the site it executes is still a NOP
although this vCPU's increment is counted, the code believes the APIC is in
the kernel and dereferences ``vcpu->arch.apic == NULL``: a ``wrong_path``.

Every worker CPU loops over the seed's program:

1. ``KVM_CREATE_VM`` (nothing the key sees);
2. ``KVM_CREATE_VCPU`` without irqchip: ``static_key_slow_inc`` (counter ``vcpus``,
   the denominator of ``wrong_path``);
3. the vCPU runs: ``static_key_false`` at jump site ``--site`` (default the last
   one, which ``jump_label_update`` patches last: the widest window);
4. the vCPU is destroyed (``kvm_arch_vcpu_uninit``): ``static_key_slow_dec``.
   Unconditional here: the real uninit tests ``lapic_in_kernel()`` again, but a
   vCPU that took the wrong path has already oopsed; the emulation records the
   oops and tears the vCPU down as created, so the count stays balanced;
5. close the VM.

The key has ``--sites`` jump sites (text in the segment, one word each);
``jump_label_update`` patches them one by one, ``--patch-delay-us`` apart in
free mode (patching live text costs a breakpoint and IPIs to every core).

The coordinator CPU is idle: the storm is the worker CPUs' (``--cpus``), as in
the seed's "several copies of the program"; on a 2-core host two workers use
both cores. At quiesce (``check``) the key must be 0 with every site a NOP.

In ``seed-fix`` a ``warn`` can appear with more than one iteration per CPU: the
seed's ``WARN(atomic_read(&key->enabled) < 0)`` reads the count again *after*
a successful fast-path decrement, and by then another CPU may have dropped it
to 0 and started a first increment (-1). Upstream checks the value it
decrements instead, and never warns here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shmkernel.errors import UsageError
from shmkernel.kernel.jump_label import (
    JUMP_LABEL_NOP,
    StaticKey,
    declare_static_key,
    jump_label_variant,
    static_key_init,
)
from shmkernel.memory.layout import Layout
from shmkernel.memory.segment import Segment
from shmkernel.runtime.ctx import Ctx
from shmkernel.runtime.machine import RunResult
from shmkernel.workload import Option, Workload


@dataclass(frozen=True)
class StaticKeyVars:
    key: StaticKey  # kvm_no_apic_vcpu


def _site(opts: dict[str, Any]) -> int:
    sites, site = opts["sites"], opts["site"]
    if site is None:
        return sites - 1
    if site >= sites:
        raise UsageError(f"--site must be below --sites ({sites}), got {site}")
    return site


def kvm_vcpu_storm(ctx: Ctx, p: dict[str, Any]) -> None:
    """A worker CPU: the seed's create-VM / create-vCPU / close loop."""
    jl = jump_label_variant(p["variant"], p["patch_delay_us"] if ctx.mode == "free" else 0.0)
    key: StaticKey = p["v"].key
    site = p["site_index"]
    static_key_slow_inc, static_key_slow_dec = jl.static_key_slow_inc, jl.static_key_slow_dec
    static_key_false = jl.static_key_false
    for _ in ctx.loop(p["iterations"]):
        # KVM_CREATE_VM, then KVM_CREATE_VCPU with the LAPIC in userspace:
        # kvm_arch_vcpu_init(): if (!irqchip_in_kernel(kvm)) static_key_slow_inc(&kvm_no_apic_vcpu);
        if not static_key_slow_inc(ctx, key):
            continue  # upstream refused the increment (count at INT_MAX): no vCPU
        ctx.count("vcpus")
        # The vCPU runs: lapic_in_kernel(vcpu) is
        #     if (static_key_false(&kvm_no_apic_vcpu)) return vcpu->arch.apic; return true;
        if not static_key_false(ctx, key, site):
            # a NOP: "the APIC is in the kernel", and vcpu->arch.apic is NULL
            ctx.event("wrong_path", site=site)
        # close(vcpu), close(vm): kvm_arch_vcpu_uninit() drops the vCPU's count
        static_key_slow_dec(ctx, key)


def static_key_setup(ctx: Ctx, p: dict[str, Any]) -> None:
    """Boot: the key disabled, every site a NOP, jump_label_mutex free."""
    static_key_init(ctx, p["v"].key)


class StaticKeyWorkload(Workload):
    setup_fn = staticmethod(static_key_setup)
    cpu_fn = staticmethod(kvm_vcpu_storm)  # the coordinator CPU stays idle

    def __init__(self) -> None:
        super().__init__(
            name="static-key",
            summary="seed 004: concurrent static_key_slow_inc() returns before the jump sites are patched",
            variants={
                "pre-fix": "before the seed: inc_not_zero fast path, inc_return == 1 patches (the bug)",
                "seed-fix": "the seed's fix: enabled = -1 while the first increment patches the sites",
                "upstream": "today: static_key_fast_inc_not_disabled, static_key_dec_not_one",
            },
            aliases={"buggy": "pre-fix", "fixed": "seed-fix"},
            events=("wrong_path",),
            counters=("vcpus",),
            denominators={"wrong_path": "vcpus"},
            options=(
                Option("sites", int, 4, "jump sites of kvm_no_apic_vcpu in the text", 1, 4096),
                Option("site", int, None, "the site the vCPU code executes (default the last one patched)", 0, 4095),
                Option(
                    "patch_delay_us",
                    float,
                    0.0,
                    "time patching one site takes in free mode (µs; >= 50 sleeps, below busy-waits)",
                    0,
                    1e6,
                ),
            ),
            explore_defaults={"iterations": 1, "sites": 2},
        )

    def declare(self, layout: Layout, opts: dict[str, Any]) -> StaticKeyVars:
        _site(opts)
        return StaticKeyVars(key=declare_static_key(layout, "kvm_no_apic_vcpu", opts["sites"]))

    def params(self, variant: str, v: StaticKeyVars, opts: dict[str, Any], iterations: int | None) -> dict:
        return super().params(variant, v, opts, iterations) | {"site_index": _site(opts)}

    def check(
        self, variant: str, v: StaticKeyVars, seg: Segment, cpus: int, opts: dict[str, Any], result: RunResult
    ) -> list[str]:
        enabled, sites = jump_label_variant(variant).storage(seg.words, v.key)
        problems = []
        if enabled != 0:
            problems.append(f"kvm_no_apic_vcpu.enabled is {enabled} at quiesce, every vCPU gone (expected 0)")
        patched = [i for i, s in enumerate(sites) if s != JUMP_LABEL_NOP]
        if patched:
            problems.append(f"jump sites {patched} still patched at quiesce with the key disabled")
        if seg.words[v.key.jump_label_mutex]:
            problems.append("jump_label_mutex still held at quiesce")
        return problems

    def extra(self, variant: str, v: StaticKeyVars, seg: Segment) -> dict[str, Any]:
        enabled, sites = jump_label_variant(variant).storage(seg.words, v.key)
        return {"key": {"enabled": enabled, "sites": sites}}


WORKLOAD = StaticKeyWorkload()
