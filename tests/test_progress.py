"""Progress bars of the long commands: drawn on a terminal (a real pty here), nothing at all
when standard error is a pipe or a file (logs, CI, systemd)."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

from tests.paths import REPO

SCRIPT = ("import time\n"
          "from bot.tools.progress import progress, working\n"
          "with working('loading the model'):\n"
          "    time.sleep(0.6)\n"
          "total = sum(progress(list(range(5)), 'documents', unit='doc'))\n"
          "print('total', total)\n")


def run(stderr: int) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, stdout=subprocess.PIPE,
                          stderr=stderr, timeout=60, check=True)


def test_nothing_is_drawn_off_a_terminal() -> None:
    done = run(subprocess.PIPE)
    assert done.stdout == b"total 10\n"
    assert done.stderr == b""


def test_bars_are_drawn_on_a_terminal() -> None:
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=follower)
    os.close(follower)
    drawn = b""
    try:
        while chunk := _read(leader):
            drawn += chunk
    finally:
        os.close(leader)
        out, _ = proc.communicate(timeout=60)
    assert out == b"total 10\n"  # the report itself is untouched
    text = drawn.decode("utf-8", "replace")
    assert "loading the model 00:0" in text and "documents:" in text and "/5 " in text, text


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except OSError:  # EIO: the process closed its end
        return b""
