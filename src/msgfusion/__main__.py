"""``python -m msgfusion``: the command line."""

import sys

from msgfusion.cli import main

sys.exit(main())
