"""``python -m pconv_lib``: the command line (see :mod:`pconv_lib.cli`)."""

import sys

from pconv_lib.cli import main

sys.exit(main())
