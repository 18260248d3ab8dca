"""``python -m hami_plugin_ascend --node-name "$NODE_NAME" --device-config-file F``
(``--help`` lists every flag)."""

import sys

from hami_plugin_ascend.cli import main

if __name__ == "__main__":
    sys.exit(main())
