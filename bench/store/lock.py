"""One process per run directory: an exclusive `fcntl.flock` on <run dir>/.lock, held for `run` and `resume`.

The kernel drops the lock when the holder exits (even on SIGKILL), so a stale lock file never blocks a resume.
The holder's pid is written into the file so a refused second process can name it.
"""
import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from theory.errors import TheoryError

LOCK_NAME = ".lock"


@contextmanager
def run_lock(run_dir: Path):
    path = Path(run_dir) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise TheoryError(f"{run_dir} is in use by another bench process (pid {holder}); "
                              f"wait for it to finish or stop it, then resume") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)                      # closing the descriptor releases the lock
