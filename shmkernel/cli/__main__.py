"""``python -m shmkernel.cli``: the same as the ``shmkernel`` command."""

import sys

from shmkernel.cli import main

sys.exit(main())
