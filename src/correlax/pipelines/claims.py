"""Claims: exclusive lock files that say which worker computes a map, and that expire when it is gone.

A claim file holds its owner: host, boot id, pid namespace, pid and that process's start time
(``/proc/<pid>/stat``), and the owner refreshes the file's modification time every :data:`HEARTBEAT_SECONDS`
while it holds the claim. Another worker takes a claim over when its owner is provably gone:

- same host, boot and pid namespace: the pid is not running, or runs a process started at another time (a
  reused pid);
- same host, another boot id: the machine has rebooted since;
- otherwise (another host or container, or a claim without a start time): no heartbeat for :data:`STALE_SECONDS`;
- a file that is empty or not JSON (its writer was killed mid-write): older than :data:`UNREADABLE_SECONDS`.

A live owner is never taken over, so every wait on one has a bound (:class:`ClaimTimeout`).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

from correlax.errors import FileProblem

HEARTBEAT_SECONDS = 30.0  # how often a holder refreshes its claim's modification time
STALE_SECONDS = 600.0  # a claim without a heartbeat for this long, whose owner cannot be checked, is abandoned
UNREADABLE_SECONDS = 60.0  # an unreadable claim file this old was left by a writer killed mid-write
WAIT_SECONDS = 6 * 3600.0  # the longest a worker waits for another, live one to finish an entry


class ClaimTimeout(FileProblem):
    """A live worker held a claim for longer than the caller would wait."""


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def boot_id() -> str | None:
    """This boot of this machine (Linux); None where the system does not say."""
    text = _read("/proc/sys/kernel/random/boot_id")
    return text.strip() if text else None


def pid_namespace() -> str | None:
    """This process's pid namespace (Linux): containers sharing a host name may not see each other's pids."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (field 22 of ``/proc/<pid>/stat``); None when no
    such process runs or the system has no ``/proc``."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    try:
        return int(text.rsplit(")", 1)[1].split()[19])  # fields after the command name start at field 3
    except (IndexError, ValueError):
        return None


def owner() -> dict:
    """This process as a claim's owner."""
    return {"host": socket.gethostname(), "boot_id": boot_id(), "pid_ns": pid_namespace(), "pid": os.getpid(),
            "start": process_start(os.getpid()), "time": time.time()}  # fmt: skip


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def why_abandoned(info: dict | None, age: float) -> str | None:
    """Why a claim with owner ``info`` (None: unreadable) and heartbeat ``age`` seconds is abandoned; None while
    its owner may be alive."""
    if info is None:
        return f"unreadable claim, {age:.0f} s old" if age > UNREADABLE_SECONDS else None
    pid, start = info.get("pid"), info.get("start")
    same_pids = info.get("pid_ns") in (None, pid_namespace())  # pids of another container mean nothing here
    if info.get("host") == socket.gethostname() and isinstance(pid, int) and same_pids:
        if info.get("boot_id") and boot_id() and info["boot_id"] != boot_id():
            return f"pid {pid} ran before this machine rebooted"
        if not _pid_running(pid):
            return f"pid {pid} is not running"
        if isinstance(start, int) and process_start(pid) is not None:
            return None if process_start(pid) == start else f"pid {pid} is another process now"
    return f"no heartbeat for {age:.0f} s" if age > STALE_SECONDS else None


def describe_owner(info: dict | None) -> str:
    """A claim's owner in words, for messages."""
    return "an unknown worker" if info is None else f"pid {info.get('pid')} on {info.get('host')}"


def read_claim(lock: Path) -> tuple[dict | None, float, int] | None:
    """(owner or None when unreadable, heartbeat age in seconds, inode); None when there is no claim."""
    try:
        with lock.open() as f:
            stat = os.fstat(f.fileno())
            text = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return None, 0.0, 0
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    return (info if isinstance(info, dict) else None), time.time() - stat.st_mtime, stat.st_ino


class _Heartbeat:
    """One daemon thread that touches every claim this process holds."""

    def __init__(self) -> None:
        self.held: set[Path] = set()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def add(self, path: Path) -> None:
        with self.lock:
            self.held.add(path)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="correlax-claims", daemon=True)
                self.thread.start()

    def discard(self, path: Path) -> None:
        with self.lock:
            self.held.discard(path)

    def _run(self) -> None:
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            with self.lock:
                held = list(self.held)
            for path in held:
                try:
                    os.utime(path)
                except OSError:
                    pass  # released meanwhile, or taken over


_heartbeat = _Heartbeat()


class Claim:
    """A claim this process holds; its heartbeat runs until it is released (on exit, also on error)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        _heartbeat.add(path)

    def release(self) -> None:
        """Stop the heartbeat and remove the claim file."""
        _heartbeat.discard(self.path)
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def try_claim(lock: Path, warn) -> Claim | None:
    """Claim ``lock`` for this process; None while a live owner holds it. An abandoned claim is taken over
    (``warn`` gets a line naming it and why)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            found = read_claim(lock)
            if found is None:
                continue  # released just now
            info, age, inode = found
            why = why_abandoned(info, age)
            if why is None:
                return None
            try:  # only the claim judged: another worker may have taken it over meanwhile
                if os.stat(lock).st_ino == inode:
                    warn(f"{lock}: taking over the claim of {describe_owner(info)} ({why})")
                    lock.unlink()
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(owner(), f)
        return Claim(lock)
    return None


def live_owner(lock: Path) -> dict | None:
    """The owner of a live claim on ``lock`` ({} when unreadable but recent); None when there is none."""
    found = read_claim(lock)
    if found is None or why_abandoned(found[0], found[1]) is not None:
        return None
    return found[0] or {}


def wait_while_claimed(lock: Path, what: str, timeout: float, poll: float = 2.0) -> None:
    """Wait while a live owner holds ``lock``; raises ClaimTimeout (naming ``what`` and the owner) after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (info := live_owner(lock)) is not None:
        if time.monotonic() >= deadline:
            raise ClaimTimeout(what, f"still being computed by {describe_owner(info or None)} after {timeout:.0f} s "
                                     f"(claim {lock}); rerun later, or remove the claim if that worker is gone")  # fmt: skip
        time.sleep(max(0.0, min(poll, deadline - time.monotonic())))
