#!/bin/sh
# Every image's entrypoint: its service (python3 -m "$HAMI_MODULE", set by the image) with the
# container's arguments, e.g. `--help`. exec: the service is PID 1 and gets the signals.
exec python3 -m "$HAMI_MODULE" "$@"
