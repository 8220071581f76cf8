"""``python -m wemasy_async.cli``: the same as the ``wemasy-async`` command."""

from __future__ import annotations

import sys

from wemasy_async.cli import main

sys.exit(main())
