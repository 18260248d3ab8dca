"""``python -m hami_plugin_cambricon --node-name "$NODE_NAME"`` (``--help`` lists every flag)."""

import sys

from hami_plugin_cambricon.cli import main

if __name__ == "__main__":
    sys.exit(main())
