import sys

from depthart_core.cli import main

sys.exit(main())
