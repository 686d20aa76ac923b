"""`python -m depthart_core.cli`: the `depthart` command (as `python -m depthart_core`)."""

import sys

from depthart_core.cli import main

sys.exit(main())
