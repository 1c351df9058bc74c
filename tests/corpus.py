"""Where the tests find the litmus corpora of ``../shared`` (GPL data: read in
place, never copied into the repository), and what herd7 says about them."""

from __future__ import annotations

import csv
import os

import pytest

SHARED = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
KERNEL = os.path.join(SHARED, "lkmm-litmus")
PAULMCK = os.path.join(SHARED, "paulmck-litmus")
#: set to 1 to run the suite where the corpora cannot be (their tests then skip, saying so)
NO_CORPUS = os.environ.get("SHMKERNEL_NO_SHARED_CORPUS") == "1"


def _table(path: str) -> list[dict[str, str]]:
    if NO_CORPUS:
        pytest.skip("SHMKERNEL_NO_SHARED_CORPUS=1: the shared litmus corpora are not checked")
    if not os.path.isfile(path):
        pytest.fail(
            f"{path} is missing (../shared beside this checkout); set SHMKERNEL_NO_SHARED_CORPUS=1 to run without it",
            pytrace=False,
        )
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def kernel_expected() -> dict[str, str]:
    """herd7's verdicts on the kernel's own 26 tests (EXPECTED.tsv)."""
    return {row["test"]: row["lkmm"] for row in _table(os.path.join(KERNEL, "EXPECTED.tsv"))}


def herd7_verdicts() -> dict[str, str]:
    """herd7 7.57's verdicts on the paulmck corpus sample: test path -> Never/Sometimes/Always."""
    rows = _table(os.path.join(PAULMCK, "HERD7-LKMM.tsv"))
    return {row["test"]: row["herd7"] for row in rows if row["herd7"] in ("Never", "Sometimes", "Always")}
