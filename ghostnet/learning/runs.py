"""Run directories: a manifest, a lock, and the rules that keep one run's results apart from
another's.

A run directory holds ``run.json`` (the manifest: status, resolved configuration, ghostnet version,
git hash, created and updated times, the process id, a fingerprint of the data, and the message of
a failed run), ``config.toml``, ``meta.json``, ``metrics.csv``, ``checkpoint.npz`` and, once
finished, ``summary.json``; ``.lock`` is the file an advisory lock (``fcntl.flock``) is taken on
while a process trains there.

Statuses (:func:`run_status`): ``running`` (a live process holds the lock), ``interrupted``
(stopped by a signal, or killed: the manifest says running but nobody holds the lock),
``finished``, ``failed`` (diverged, or stopped by an error), or ``None`` for a directory that holds
no run. A directory written before manifests existed counts as finished when it has
``summary.json`` and as interrupted when it has other run files.
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from ghostnet.errors import RunDirError
from ghostnet.io import loads, write_json

MANIFEST = "run.json"
LOCK = ".lock"
RUN_FILES = ("run.json", "config.toml", "meta.json", "metrics.csv", "checkpoint.npz",
             "summary.json")
"""What a run writes in its directory (besides the lock file)."""
STATUSES = ("running", "interrupted", "finished", "failed")


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


def git_hash() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def read_manifest(path: str | Path) -> dict | None:
    """The manifest of run directory ``path``, or None when it has none; a damaged manifest
    raises :class:`RunDirError`."""
    f = Path(path) / MANIFEST
    try:
        text = f.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{f} cannot be read ({exc})") from None
    try:
        m = loads(text)
    except ValueError as exc:
        raise RunDirError(f"{f} is not a run manifest (corrupt JSON: {exc})") from None
    if not isinstance(m, dict) or m.get("status") not in STATUSES:
        raise RunDirError(f"{f} is not a run manifest (no valid status)")
    return m


def write_manifest(path: str | Path, manifest: dict) -> None:
    manifest["updated"] = now()
    write_json(Path(path) / MANIFEST, manifest)


def _locked_by_other(path: Path) -> bool:
    """Whether another open file description holds the lock on ``path/.lock`` (a live run)."""
    lock = path / LOCK
    if not lock.exists():
        return False
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return True
        raise
    finally:
        os.close(fd)  # closing releases a lock taken here
    return False


def run_status(path: str | Path) -> str | None:
    """``running``, ``interrupted``, ``finished``, ``failed``, or None when ``path`` holds no run
    (module docstring). A manifest that says running while no process holds the lock (the process
    was killed) reads as interrupted."""
    return _status(path, lock_held_here=False)


def _status(path: str | Path, lock_held_here: bool) -> str | None:
    """:func:`run_status`; ``lock_held_here``: the caller holds the lock, so a manifest saying
    running is a run that was killed."""
    path = Path(path)
    if not path.is_dir():
        return None
    m = read_manifest(path)
    if m is None:  # legacy run directories, written before manifests
        if (path / "summary.json").is_file():
            return "finished"
        if any((path / f).exists() for f in RUN_FILES):
            return "interrupted"
        return None
    if m["status"] == "running" and (lock_held_here or not _locked_by_other(path)):
        return "interrupted"
    if m["status"] == "finished" and not (path / "summary.json").is_file():
        return "interrupted"  # its summary was removed: resuming writes it again
    return m["status"]


def finished_runs(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Split run directories into the finished ones and ``(path, status)`` of the others (a
    damaged manifest's status reads ``'unreadable'``; a directory with no run, ``'empty'``)."""
    done, skipped = [], []
    for p in paths:
        p = Path(p)
        try:
            s = run_status(p)
        except RunDirError:
            s = "unreadable"
        if s == "finished":
            done.append(p)
        else:
            skipped.append((p, s or "empty"))
    return done, skipped


class RunLock:
    """An exclusive advisory lock (``fcntl.flock``) on ``<run>/.lock``, held while a process
    trains in the directory; released on :meth:`release` or when the process ends, however."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        lock = self.path / LOCK
        try:
            self.fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise RunDirError(f"cannot write in the run directory {self.path} "
                              f"({exc.strerror})") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            m = None
            try:
                m = read_manifest(self.path)
            except RunDirError:
                pass
            who = f" (pid {m['pid']})" if m and "pid" in m else ""
            raise RunDirError(f"{self.path} is in use by another ghostnet process{who}: two runs "
                              f"must not share a run directory") from None
        return self

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def open_run_dir(out: str | Path, resume: bool, overwrite: bool) -> RunLock:
    """Create ``out`` if needed, take its lock, and check that a run may start (or resume) there:
    a fresh run needs an empty directory or ``overwrite`` (which removes the run files of the
    run there, :data:`RUN_FILES`, and nothing else); resuming needs an interrupted run. Returns
    the held lock; raises :class:`RunDirError` with what to do otherwise."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"run directory {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create the run directory {out} ({exc.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise RunDirError(f"cannot write in the run directory {out} (permission denied)")
    lock = RunLock(out).acquire()
    try:
        status = _status(out, lock_held_here=True)
        if resume:
            if status is None:
                raise RunDirError(f"--resume: {out} holds no run to resume")
            if status == "failed":
                m = read_manifest(out) or {}
                raise RunDirError(f"--resume: the run in {out} failed ({m.get('message', '?')}); "
                                  "start it again with --overwrite")
        else:
            others = [p.name for p in out.iterdir() if p.name != LOCK]
            if others and not overwrite:
                what = (f"{'an' if status[0] in 'aeiou' else 'a'} {status} run" if status else
                        f"files that are not a ghostnet run ({', '.join(sorted(others)[:3])}"
                        f"{', ...' if len(others) > 3 else ''})")
                hint = " (continue it with --resume)" if status == "interrupted" else ""
                raise RunDirError(f"{out} already holds {what}{hint}; give --overwrite to replace "
                                  "it, or choose another --out")
            if overwrite:
                for name in RUN_FILES:
                    f = out / name
                    if f.is_dir() and not f.is_symlink():
                        shutil.rmtree(f)
                    elif f.exists() or f.is_symlink():
                        f.unlink()
    except BaseException:
        lock.release()
        raise
    return lock
