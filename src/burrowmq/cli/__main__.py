"""``python -m burrowmq.cli``: the ``burrowmq`` command."""

from __future__ import annotations

import sys

from burrowmq.cli import main

sys.exit(main())
