"""``python -m wpsim``: the same as the ``wpsim`` command (:mod:`wpsim.console`, which also
ends an interrupt while the modules load with one line)."""

import sys

from wpsim.console import main

sys.exit(main())
