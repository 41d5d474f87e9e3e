"""Small process helpers: pid files, liveness, ports, detached start and group stop."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from thrive_shared.devstack.errors import StackError


def read_pid(path: Path) -> int | None:
    """The pid stored in a pid file (first line), if any."""
    try:
        first = path.read_text().splitlines()[0].strip()
        return int(first)
    except (OSError, IndexError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user (the postmaster runs as `postgres`)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    # state is the field after the parenthesised command name
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def cmdline(pid: int) -> list[str]:
    """Arguments of a running process (empty if unknown)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def spawn_detached(
    argv: Sequence[str], *, cwd: Path, output: Path, env: Mapping[str, str] | None = None
) -> int:
    """Start a long-running process in its own session (immune to the caller's Ctrl-C)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            close_fds=True,
        )
    # Keep the Popen: otherwise subprocess reaps the child behind our back and its exit
    # code is lost for the "Kafka exited during start-up with exit code N" message.
    _children[proc.pid] = proc
    return proc.pid


_children: dict[int, subprocess.Popen[bytes]] = {}


def exit_status(pid: int) -> int | None:
    """Reap a child of this process if it has exited; its exit code, else None."""
    if pid in _children:
        return _children[pid].poll()
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if done == 0:
        return None
    return os.waitstatus_to_exitcode(status)


def stop_group(pid: int, *, timeout: float) -> bool:
    """SIGTERM the process group led by pid, wait, then SIGKILL; True if it stopped gracefully."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return True
    # Only signal the group if pid leads it (it was started with start_new_session).
    target_group = pgid == pid
    _signal(pid, signal.SIGTERM, group=target_group)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exit_status(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    _signal(pid, signal.SIGKILL, group=target_group)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and pid_alive(pid):
        exit_status(pid)
        time.sleep(0.1)
    return False


def _signal(pid: int, sig: signal.Signals, *, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def tail(path: Path, lines: int = 20) -> str:
    """Last lines of a text file ('' if missing)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


@contextlib.contextmanager
def file_lock(path: Path, *, timeout: float, what: str) -> Iterator[None]:
    """Exclusive inter-process lock on a file; StackError if not acquired within timeout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StackError(
                        f"Another devstack command kept the stack busy for {timeout:.0f}s "
                        f"while {what} (lock {path}); wait for it to finish and retry."
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
