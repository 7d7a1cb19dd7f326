"""``python -m wpsim``: the same as the ``wpsim`` command."""

import sys

from wpsim.cli import main

sys.exit(main())
