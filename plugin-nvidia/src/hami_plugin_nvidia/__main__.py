import sys

from hami_plugin_nvidia.cli import main

sys.exit(main())
