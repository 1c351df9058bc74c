"""``shmkernel litmus --memory-model lkmm``: the axiomatic engine's verdict in
herd7's words (``Test``/``States``/``Witnesses``/``Observation`` lines), or as
JSON. A test whose candidates outrun the budget gets no verdict at all
(`Budget`): the command says so and exits 4, never printing Never for what
it did not cover."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shmkernel.errors import UsageError
from shmkernel.litmus.axiomatic import AxiomaticResult, Budget, run_axiomatic
from shmkernel.litmus.cparse import CTest, parse_c_litmus
from shmkernel.litmus.outcomes import key_text, prop_text

MODEL_LINE = "lkmm (axiomatic: linux-kernel.cat, .bell, lock.cat)"


@dataclass
class LkmmVerdict:
    test: CTest
    res: AxiomaticResult

    @property
    def observation(self) -> str:
        return self.res.outcomes.observation

    @property
    def validated(self) -> bool:
        o = self.res.outcomes
        q = self.test.quantifier
        if q == "exists":
            return o.positive > 0
        if q == "~exists":
            return o.positive == 0
        return o.negative == 0

    def as_json(self) -> dict[str, Any]:
        o = self.res.outcomes
        return {
            "test": self.test.name,
            "memory_model": "lkmm",
            "engine": "axiomatic",
            "mode": "exhaustive",
            "observation": self.observation,
            "positive": o.positive,
            "negative": o.negative,
            "candidates": self.res.candidates,
            "executions": self.res.consistent,
            "seconds": round(self.res.seconds, 4),
            "states": [
                {"state": {key_text(k): str(v) if isinstance(v, str) else v for k, v in key}, "count": c}
                for key, c in sorted(o.states.items(), key=repr)
            ],
        }

    def format(self) -> str:
        t, o = self.test, self.res.outcomes
        kind = {"exists": "Allowed", "~exists": "Forbidden", "forall": "Required"}[t.quantifier]
        lines = [f"Test {t.name} {kind}", f"Model {MODEL_LINE}", f"States {len(o.states)}"]
        for key in sorted(o.states, key=repr):
            mark = "*>" if o.holds_for(key) else ":>"
            lines.append(mark + " ".join(f"{key_text(k)}={v};" for k, v in key))
        lines += [
            "Ok" if self.validated else "No",
            "Witnesses",
            f"Positive: {o.positive} Negative: {o.negative}",
            f"Condition {t.quantifier} {prop_text(t.cond)}",
            f"Observation {t.name} {self.observation} {o.positive} {o.negative}",
            f"Time {t.name} {self.res.seconds:.2f}",
            f"Candidates {t.name} {self.res.candidates} consistent {self.res.consistent}",
        ]
        return "\n".join(lines)


class NoVerdict(UsageError):
    """The candidate budget ran out: exit 4 (not proved), as ``explore`` does."""

    exit_code = 4


def lkmm_verdict(path: str, budget: int = 5_000_000) -> LkmmVerdict:
    test = parse_c_litmus(path)
    try:
        return LkmmVerdict(test, run_axiomatic(test, budget))
    except Budget as e:
        raise NoVerdict(f"no verdict: {e} (raise --budget)") from None
