"""``python -m hami_kubectl``: the same as ``kubectl hami``."""

import sys

from hami_kubectl.cli import main

sys.exit(main())
