"""`dhims2-host`: the process the browser starts for the extension's native messaging port.

It claims stdin and stdout for frames, says hello at once (the extension waits for it), and only
then loads the handlers and logging and serves requests (serving.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from dhims2.browser import framing, greeting

# Annotation names only: typing would add about a third of a bare Python start to the hello.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO


def main(argv: Sequence[str] | None = None) -> int:
    """Run the host. Arguments are the browser's (extension origin, manifest path, window id)."""
    streams = _claim_stdio()
    if streams is None:
        print(
            "dhims2-host: started without stdin or stdout; browsers start it (see install.py)",
            file=sys.stderr,
        )
        return 2
    frames_in, frames_out = streams
    # Everything the host writes (log, store, a sheet being read) may hold patient data or
    # credentials: owner-only, whatever umask the browser passed on.
    os.umask(0o077)
    framing.write_message(frames_out, greeting.hello())
    from dhims2.browser.serving import NativeHost, caller, log, start_logging

    start_logging()
    log.info("host started by %s", caller(sys.argv[1:] if argv is None else argv))
    return NativeHost(frames_in, frames_out).serve()


def _claim_stdio() -> tuple[BinaryIO, BinaryIO] | None:
    """Private copies of stdin/stdout for frames; fds 0 and 1 then point at devnull and stderr.

    A stray print, a C library's output or a child process can then never write into (or read
    from) the browser's channel. None if the browser's stdin or stdout is missing.
    """
    # A host started directly as an .exe may have no stderr (fd 2 invalid, sys.stderr None).
    # devnull takes every missing standard fd first, so that no dup below lands on 0, 1 or 2.
    missing = [fd for fd in (0, 1, 2) if not _is_open(fd)]
    if missing:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in missing:
            os.dup2(devnull, fd)
        if devnull not in missing:
            os.close(devnull)
    if sys.stderr is None:
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    if 0 in missing or 1 in missing:
        return None
    sys.stdout.flush()
    frames_in_fd = os.dup(0)
    frames_out_fd = os.dup(1)
    os.dup2(sys.stderr.fileno(), 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = sys.stderr
    if sys.platform == "win32":
        import msvcrt

        # Text mode would turn \n into \r\n inside frames.
        msvcrt.setmode(frames_in_fd, os.O_BINARY)
        msvcrt.setmode(frames_out_fd, os.O_BINARY)
    return os.fdopen(frames_in_fd, "rb"), os.fdopen(frames_out_fd, "wb")


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
