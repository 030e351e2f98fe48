"""`python -m dhims2.cli` runs the `dhims2` command."""

import sys

from dhims2.cli.main import main

sys.exit(main())
