"""`python3 -m orchestrator.cli`."""

import sys

from . import main

sys.exit(main())
