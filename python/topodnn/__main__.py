"""``python -m topodnn``: the ``topodnn`` command line."""

import sys

from .cli import main

sys.exit(main())
