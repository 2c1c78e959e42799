"""``python -m worker`` is ``callbridge``: handy before the package is installed."""

import sys

from worker.cli import main

sys.exit(main())
