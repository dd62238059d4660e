import sys

from msgfusion.cli import main

sys.exit(main())
