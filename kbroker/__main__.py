"""``python -m kbroker``: same as the ``kbroker`` script."""

from __future__ import annotations

import sys

from kbroker.cli import main

sys.exit(main())
