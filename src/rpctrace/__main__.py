"""``python -m rpctrace``."""

import sys

from rpctrace.cli import main

sys.exit(main())
