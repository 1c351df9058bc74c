"""Temporary: the old names while the kernel tests move (removed before this lands)."""

from shmkernel.measure.record import measure_free as run_free
from shmkernel.workload.machines import boot, open_machine

__all__ = ["boot", "open_machine", "run_free"]
