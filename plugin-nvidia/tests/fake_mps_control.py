"""A stand-in for ``nvidia-cuda-mps-control`` (the hardware side of the MPS tests).

``-d``: returns at once and leaves a daemon answering on ``$CUDA_MPS_PIPE_DIRECTORY/control``
(a unix socket, as the real daemon's), which notes ``start <CUDA_VISIBLE_DEVICES>`` and each
command in ``$CUDA_MPS_LOG_DIRECTORY/control.log``. Without ``-d``: sends the commands on stdin
to the daemon (``quit`` stops it and removes the socket), as ``echo quit | ...-control``.
"""

from __future__ import annotations

import os
import socket
import sys


def daemon(path: str, log_path: str) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)
    srv.bind(path)
    srv.listen(16)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"start {os.environ.get('CUDA_VISIBLE_DEVICES', '')}\n")
        log.flush()
        while True:
            conn, _ = srv.accept()
            with conn:
                data = conn.recv(4096).decode()
            for line in data.splitlines():
                log.write(f"command {line.strip()}\n")
                log.flush()
                if line.strip() == "quit":
                    os.unlink(path)
                    os._exit(0)


def main() -> int:
    pipe = os.environ["CUDA_MPS_PIPE_DIRECTORY"]
    path = os.path.join(pipe, "control")
    if sys.argv[1:] == ["-d"]:
        log_dir = os.environ.get("CUDA_MPS_LOG_DIRECTORY", pipe)
        if os.fork() == 0:
            daemon(path, os.path.join(log_dir, "control.log"))
        return 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        s.sendall(sys.stdin.read().encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
