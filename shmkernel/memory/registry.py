"""The memory models by name, and the one that a run under each uses.

`shmkernel.memory.models` holds sc, tso and weak, `shmkernel.memory.lkmm`
the LKMM's; this module is the only one that knows them all (so neither
imports the other's user).
"""

from __future__ import annotations

from shmkernel.errors import UsageError
from shmkernel.memory.lkmm import LKMMModel
from shmkernel.memory.models import BufferedModel, SCModel

MODELS = ("native", "sc", "tso", "weak", "lkmm")
#: models with schedule actions of their own (store commits, older loads)
BUFFERED_MODELS = ("tso", "weak", "lkmm")


def make_model(name: str, words: memoryview, ncpus: int) -> SCModel | None:
    """The model object the coordinator keeps; None for the host's own (native)."""
    if name == "native":
        return None
    if name == "sc":
        return SCModel(words, ncpus)
    if name in ("tso", "weak"):
        return BufferedModel(words, ncpus, name)
    if name == "lkmm":
        return LKMMModel(words, ncpus)
    raise UsageError(f"unknown memory model {name!r}; choose one of {', '.join(MODELS)}")
