"""The public face of the scheduled mode, as loom's ``loom::model`` is of its runtime::

    from shmkernel.explore import explore, replay

    r = explore("refcount", variant="buggy")          # verdict "found"
    print(r.trace)
    [again] = replay("refcount", r.schedule)          # one ExploreResult per repeat

Everything lives in `shmkernel.schedule.explorer`; see its docstring.
"""

from shmkernel.schedule.explorer import DEFAULT_SAMPLE_BUDGET, DEFAULT_SEARCH_BUDGET, SCHEDULERS, explore, replay
from shmkernel.schedule.result import VERDICTS, ExploreResult
from shmkernel.schedule.session import EXPLORE_KEYS

__all__ = [
    "DEFAULT_SAMPLE_BUDGET",
    "DEFAULT_SEARCH_BUDGET",
    "EXPLORE_KEYS",
    "SCHEDULERS",
    "VERDICTS",
    "ExploreResult",
    "explore",
    "replay",
]
