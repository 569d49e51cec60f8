"""``python -m cwy_manifolds``: the same as the ``cwy-manifolds`` command."""

import sys

from .cli import main

sys.exit(main())
