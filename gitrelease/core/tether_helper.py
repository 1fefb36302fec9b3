"""The helper `tether` runs a child through: it dies with the process that started it.

Run as a script (``python -I -S tether_helper.py GO STATUS -- ARGV``), never imported by
gitrelease, so it starts in a few milliseconds with the standard library alone. It leads a
process group of its own. It waits for one byte on the pipe GO (sent once its starter has
written the group into the journal), starts ARGV in its own group, says on STATUS whether
that worked, then watches GO: when the starter dies, however it dies, the pipe's write end
closes and the helper kills its whole group, the command and whatever it started, at once.
Without that byte (the starter died before it said go) the command never starts.
"""

import os
import select
import signal
import subprocess
import sys

_NOT_STARTED = 125


def main(go: int, status: int, argv: list[str]) -> int:
    if os.read(go, 1) != b"1":
        return _NOT_STARTED  # the starter is gone: nothing may run on its behalf
    try:
        child = subprocess.Popen(argv)  # inherits stdin, stdout, stderr, cwd, environment
    except OSError as exc:
        os.write(status, f"{exc.strerror or exc}\n".encode())
        return _NOT_STARTED
    os.write(status, b"started\n")
    os.close(status)
    watched = [go]
    pidfd = os.pidfd_open(child.pid) if hasattr(os, "pidfd_open") else None
    if pidfd is not None:
        watched.append(pidfd)
    while True:
        ready, _, _ = select.select(watched, [], [], 0.2 if pidfd is None else None)
        if go in ready and not os.read(go, 1):
            # The starter died: so do the command and everything in this group, now.
            os.killpg(os.getpgrp(), signal.SIGKILL)
        returncode = child.poll()
        if returncode is not None:
            break
    if returncode < 0:  # the starter sees the command's own signal, as without the helper
        if -returncode not in (signal.SIGKILL, signal.SIGSTOP):  # these have no handler
            signal.signal(-returncode, signal.SIG_DFL)
        os.kill(os.getpid(), -returncode)
    return returncode


if __name__ == "__main__":
    separator = sys.argv.index("--")
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[separator + 1:]))
