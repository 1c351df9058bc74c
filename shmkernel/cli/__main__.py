"""``python -m shmkernel.cli``: the same as the ``shmkernel`` command."""

from shmkernel.cli import entry

entry()
