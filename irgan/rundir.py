"""Output folders that never lose work, shared by ``irgan train`` and ``irgan compare``.

A folder is claimed with an exclusive ``flock`` on ``.irgan.lock`` inside it (the kernel drops it
if the process dies, so there is no stale lock to clear), default folders are new for every run,
files are written atomically, and a failed start removes only what it wrote, never what a
resumed run would need.
"""
from __future__ import annotations

import fcntl
import itertools
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from irgan.checkpoint import atomic_write


@dataclass
class RunDir:
    """A folder claimed by this process: where it is, whether this run made it, whether it continues
    an earlier run, and the files this run created (all that ``abandon`` may remove)."""

    path: Path
    created: bool
    resume: bool
    lock_fd: int
    written: list[Path] = field(default_factory=list)

    LOCK = ".irgan.lock"

    @classmethod
    def claim(cls, out: str | Path | None, default: Path, resume: bool, request_file: str, done_file: str) -> "RunDir":
        """Lock ``out`` (``default``, or ``default-2``, ``-3``... when None). One-line errors: the
        folder is a file, another process holds it, it is not empty (a new run), it holds no
        ``request_file`` or already holds ``done_file`` (a resumed run)."""
        if out is None:
            path, created = new_folder(default), True
        else:
            path = Path(out)
            if path.exists() and not path.is_dir():
                raise FileExistsError(f"--out {path} is a file, not a directory")
            if resume and not (path / request_file).is_file():
                raise FileNotFoundError(f"{path} is not an irgan run directory (no {request_file})")
            created = not path.exists()
            path.mkdir(parents=True, exist_ok=True)
        claim = cls(path, created, resume, _lock(path / cls.LOCK))
        try:
            if resume and (path / done_file).exists():
                raise FileExistsError(f"run {path} has already finished: nothing to resume")
            if not resume and any(p.name != cls.LOCK for p in path.iterdir()):
                raise FileExistsError(f"output directory {path} is not empty: choose another --out (nothing was overwritten)")
        except BaseException:
            claim.abandon()
            claim.release()
            raise
        for leftover in path.glob(".*.tmp"):  # a temporary file of a write cut short (SIGKILL)
            leftover.unlink(missing_ok=True)
        return claim

    def write(self, name: str, data: bytes) -> None:
        """Write ``name`` in the folder atomically, remembering that this run created it."""
        target = self.path / name
        new = not target.exists()
        atomic_write(target, lambda f: f.write(data))
        if new:
            self.written.append(target)

    def abandon(self, also: Sequence[str] = (), keep_if: Sequence[str] = ()) -> None:
        """After a failure: remove what this run wrote (and the files or folders ``also`` names),
        unless it resumed an earlier run or any of ``keep_if`` exists (then the folder stays whole)."""
        if self.resume or any((self.path / name).exists() for name in keep_if):
            return
        for path in [*self.written, *(self.path / name for name in also)]:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if self.created and all(p.name == self.LOCK for p in self.path.iterdir()):
            (self.path / self.LOCK).unlink(missing_ok=True)
            self.path.rmdir()

    def release(self) -> None:
        """Remove the lock file (when the folder still exists) and drop the lock."""
        (self.path / self.LOCK).unlink(missing_ok=True)
        os.close(self.lock_fd)


def _lock(path: Path) -> int:
    """An open descriptor holding an exclusive lock on ``path``; FileExistsError if another process holds it.

    A lock taken on a file that its holder unlinked meanwhile (``release``) would be a lock on
    nothing: the inode is checked against the path's and the claim retried."""
    for _ in range(100):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise FileExistsError(f"another run ({holder}) is writing to {path.parent}: wait for it, "
                                  "or choose another --out") from None
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
            return fd
        os.close(fd)
    raise FileExistsError(f"cannot lock {path}: it keeps being replaced")


def new_folder(base: Path) -> Path:
    """Create and return ``base``, or ``base-2``, ``base-3``... the first that does not exist yet (atomic: mkdir)."""
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def absolute(path: str | None) -> str | None:
    """``path`` made absolute (None stays None), so that a resumed run finds it from any folder."""
    return None if path is None else str(Path(path).expanduser().resolve())


def absolute_if_file(dataset: str) -> str:
    """A ratings file's path made absolute; a data set's name as is."""
    path = Path(dataset).expanduser()
    return str(path.resolve()) if path.is_file() else dataset
