"""``python -m pconv_lib``: the command line (see :mod:`pconv_lib.app.cli`).

``doctor`` runs without importing the command line's dependencies (OpenCV, torch), so that it can
report them missing or broken instead of failing with a traceback.
"""

import sys

if sys.argv[1:2] == ["doctor"]:
    from pconv_lib.app.doctor import main as doctor_main

    sys.exit(doctor_main(sys.argv[2:]))

from pconv_lib.app.cli import main

sys.exit(main())
