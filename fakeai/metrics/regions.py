"""Where each process's metrics live: its own region, and the other processes' regions.

With ``fakeai serve --workers N`` every worker process writes one region file in a directory
the server owns (``FAKEAI_SHARED_METRICS_DIR``, made by the supervisor in ``/dev/shm`` and
removed when it exits); any worker reads all of them for a scrape. Without a directory (one
process, or an app made in a test) the region is anonymous memory and the only one.

Lifecycle of a region file ``<pid>-<token>.region``:

* a worker creates it at start-up (all its pages touched, so its memory is flat from then),
  under another name, renamed once whole: every ``.region`` file a reader lists is complete;
* a worker that dies leaves it behind: its counts keep counting, its gauges (running
  requests, open streams) are ignored since nothing runs there any more;
* once its newest record has left the sliding window, the first reader to notice replaces
  it, atomically (``rename`` over it), by a compact copy without the journal: counts only.
  A restarted worker gets a new pid, a new region, and starts from zero: nothing is counted
  twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import secrets
import select
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fakeai.metrics.schema import cell
from fakeai.region import Region, region_bytes
from fakeai.window import SlidingWindow

__all__ = (
    "DROPPED_KEY",
    "SHARED_DIR_ENV",
    "ProcessWatch",
    "RegionReader",
    "Regions",
    "claim_slot",
    "pid_alive",
    "region_file_bytes",
    "shared_counter",
)

SHARED_DIR_ENV = "FAKEAI_SHARED_METRICS_DIR"
"""Set by ``fakeai serve`` for its worker processes; not a user setting."""
SUFFIX = ".region"
_ENDPOINT_ID = cell("c|requests").name("")
"""The key prefix of an endpoint's first cell, whose index is the endpoint's id in the journal."""
DROPPED_KEY = "c|dropped_samples"
"""A compact copy's record of the samples its journal had dropped (the header's count)."""
KEY_CAPACITY = 32_768
CELL_CAPACITY = 196_608
"""A region's default room (the registry sizes its own for its label space: ``labels.region_need``)."""
MIN_JOURNAL = 1024
CHASES = 1024
"""Times a catch-up looks for what was recorded while it yielded, then it ends and the rest is
replayed by the read's next step, in one piece. Under a burst of recording (a fill at 6k
requests a second) 16 looks left that step 1.3 ms of replay at the mean; a catch-up that
keeps looking ends within the records of one give-way, and 1024 bounds it if another
process records faster than this one replays."""
RELIST_NANOSECONDS = 1_000_000_000
"""A listing made sooner than this after its directory last changed is made again at the next
read (``Regions._region_paths``)."""


def region_file_bytes(max_samples: int, key_capacity: int = KEY_CAPACITY, cell_capacity: int = CELL_CAPACITY) -> int:
    """The size of one worker's region file."""
    return region_bytes(key_capacity, cell_capacity, max(MIN_JOURNAL, max_samples))


_PROC = Path("/proc/self/stat").exists()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs. A worker that was killed stays a zombie until its
    supervisor reaps it (up to half a second, uvicorn's check), and ``kill(pid, 0)`` still
    finds a zombie: where there is ``/proc``, its state says it is dead, so its gauges (the
    requests it had in flight) stop counting at once."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        pass
    if not _PROC:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # "pid (command) state ...": the command may hold spaces and parentheses
            return stat.read().rpartition(b")")[2].split()[0] != b"Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped meanwhile
        return False


class ProcessWatch:
    """Whether one process still runs, asked on every read and so asked cheaply: a pidfd
    becomes readable once its process has exited (a zombie included), and never stands for a
    later process given the same pid. Where there is no pidfd, ``pid_alive`` each time."""

    __slots__ = ("_descriptor", "_poll", "dead", "pid")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.dead = pid <= 0
        self._descriptor: int | None = None
        self._poll: select.poll | None = None
        if self.dead or not hasattr(os, "pidfd_open"):
            return
        try:
            self._descriptor = os.pidfd_open(pid)
        except ProcessLookupError:
            self.dead = True
        except OSError:  # no pidfds here (an old kernel, a seccomp filter)
            return
        else:
            self._poll = select.poll()
            self._poll.register(self._descriptor, select.POLLIN)

    def alive(self) -> bool:
        if self.dead:
            return False
        if self._poll is None:
            return pid_alive(self.pid)
        if self._poll.poll(0):
            self.dead = True
            self.close()
        return not self.dead

    def close(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = self._poll = None

    def __del__(self) -> None:
        self.close()


@dataclass
class RegionReader:
    """What this process has read of one region: its journal position and its windows."""

    region: Region
    window_seconds: float
    max_samples: int
    identity: tuple[int, int] = (0, 0)
    """(device, inode) of the file it was opened from: a replaced file is read anew."""
    cursor: int = 0
    lost: int = 0
    endpoints: dict[int, tuple[SlidingWindow, ...]] = field(default_factory=dict)
    endpoint_names: dict[int, str] = field(default_factory=dict)
    known_keys: list[tuple[str, int, int]] = field(default_factory=list)
    """The region's keys read so far (published keys never change, so each is read once)."""
    streaming: tuple[SlidingWindow, ...] = ()
    kv: tuple[SlidingWindow, ...] = ()
    _keys_inside: int = 0
    """How many of ``known_keys`` (from the first) had their cells inside a copy: they have in
    every later one (a region's cells never move, and a copy never shrinks)."""

    def __post_init__(self) -> None:
        self.streaming = tuple(self._window() for _ in range(3))
        self.kv = tuple(self._window() for _ in range(4))

    def _window(self) -> SlidingWindow:
        return SlidingWindow(self.window_seconds, self.max_samples)

    def refresh(self) -> tuple[list[tuple[str, int, int]], list[float]]:
        """Read what is new: replay the journal into the windows; the keys and a consistent
        copy of the cells."""
        region = self.region
        written = region.journal_written()  # before the keys: every record up to here has its key
        cells = region.cells()
        # keys after the cells: every change in the copy was made after its key was published
        known = self._keys()
        inside = self._keys_inside
        keys = known[:inside]
        for key in known[inside:]:
            if key[1] + key[2] <= len(cells):
                keys.append(key)
        if len(keys) == len(known):
            self._keys_inside = len(known)
        self._replay(written - self.cursor)
        return keys, cells

    def catch_up(self, limit: int = 0) -> Iterator[None]:
        """Replay what is new in the journal into the windows (an endpoint seen for the first
        time gets its windows from the keys), ``limit`` records at a time when ``limit`` is
        positive, yielding after each batch but the last: ``refresh`` without copying the
        cells, for reads that need window counts only, or to take a long backlog in slices.
        What is recorded while it yields is replayed too (looked for after each of the first
        ``CHASES`` yields), so that it ends with little backlog left for the step after.
        Nothing to do when no record is new."""
        region = self.region
        written = region.journal_written()  # before the keys: every record up to here has its key
        if written <= self.cursor:
            return
        self._keys()
        chases = CHASES
        while True:
            self._replay(min(written - self.cursor, limit) if limit > 0 else written - self.cursor)
            if self.cursor >= written:
                return
            yield
            if chases:
                chases -= 1
                newest = region.journal_written()
                if newest > written:
                    written = newest
                    self._keys()

    def _keys(self) -> list[tuple[str, int, int]]:
        """Every key the region has published, read once each (an endpoint seen for the first
        time gets its windows)."""
        new = self.region.keys(len(self.known_keys))
        for name, first, _ in new:
            if name.startswith(_ENDPOINT_ID) and first not in self.endpoints:
                self.endpoints[first] = tuple(self._window() for _ in range(4))
                self.endpoint_names[first] = name.removeprefix(_ENDPOINT_ID)
        self.known_keys += new
        return self.known_keys

    def _replay(self, limit: int) -> None:
        """At most ``limit`` (> 0) records, from the cursor on."""
        if limit <= 0:
            return
        self.cursor, lost = self.region.replay(self.cursor, self.endpoints, self.streaming, self.kv, limit)
        self.lost += lost

    def windows(self) -> Iterator[SlidingWindow]:
        for windows in self.endpoints.values():
            yield from windows
        yield from self.streaming
        yield from self.kv


class Regions:
    """This process's region (written) and every region of the server (read)."""

    def __init__(self, *, window_seconds: float, max_samples: int, directory: str | os.PathLike | None = None,
                 pid: int | None = None, key_capacity: int = KEY_CAPACITY, cell_capacity: int = CELL_CAPACITY) -> None:
        self.window_seconds = float(window_seconds)
        self.max_samples = int(max_samples)
        self.pid = os.getpid() if pid is None else pid
        self.directory = Path(directory) if directory else None
        journal = max(MIN_JOURNAL, self.max_samples)
        size = region_file_bytes(self.max_samples, key_capacity, cell_capacity)
        layout = dict(key_capacity=key_capacity, cell_capacity=cell_capacity, journal_capacity=journal,
                      window_seconds=self.window_seconds)
        self._readers: dict[str, RegionReader] = {}
        self._listing: list[Path] = []
        self._listed_at_change: int | None = None
        self._checked: set[str] = set()
        """Files whose reader was found current since the directory was last listed."""
        self._watches: dict[str, ProcessWatch] = {}
        if self.directory is None:
            self.path = None
            self.own = Region(mmap.mmap(-1, size), create=True, pid=self.pid, **layout)
        else:
            self.path = self.directory / f"{self.pid}-{secrets.token_hex(4)}{SUFFIX}"
            self.own = _made_in_place(self.path, size, pid=self.pid, **layout)
        self._own_reader = RegionReader(self.own, self.window_seconds, self.max_samples)

    def readers(self, now: float) -> list[tuple[RegionReader, bool]]:
        """Every region's reader, and whether its writer is alive (gauges count only then)."""
        if self.directory is None:
            return [(self._own_reader, True)]
        found = [(self._own_reader, True)]
        seen = set()
        for path in self._region_paths():
            reader = self._open(path)
            if reader is None:
                continue
            seen.add(path.name)
            if reader.region.journal_capacity <= 1:
                alive = False  # a compact copy: its worker died (and its pid may be another's now)
            else:
                watch = self._watches.get(path.name)
                if watch is None or watch.pid != reader.region.pid:
                    watch = self._watches[path.name] = ProcessWatch(reader.region.pid)
                alive = watch.alive()
            if not alive:
                self._maybe_retire(path, reader, now)
            found.append((reader, alive))
        for name in set(self._readers) - seen:  # vanished (the server is stopping)
            del self._readers[name]
            watch = self._watches.pop(name, None)
            if watch is not None:
                watch.close()
        return found

    def _region_paths(self) -> list[Path]:
        """The other processes' region files, listed again only when the directory changed.

        Every change that matters changes the directory's modification time: a region made
        (a worker starting), replaced by its compact copy (``rename``) or removed. A change
        made in the same tick of the file system's coarse clock as a listing would leave that
        time as it was, so a listing made less than a second after the directory's last change
        is not trusted: the next read lists again. An unchanged directory costs one ``stat``,
        not a listing and a ``stat`` per file.
        """
        assert self.directory is not None
        try:
            changed = os.stat(self.directory).st_mtime_ns
        except FileNotFoundError:  # removed: the server is stopping
            return []
        if changed != self._listed_at_change:
            self._listing = sorted(path for path in self.directory.glob("*" + SUFFIX) if path != self.path)
            self._checked.clear()  # each file's identity is checked again
            # trusted only if made long enough after the change that no later one shares its time
            self._listed_at_change = changed if time.time_ns() - changed >= RELIST_NANOSECONDS else None
        return self._listing

    def _open(self, path: Path) -> RegionReader | None:
        reader = self._readers.get(path.name)
        if reader is not None and path.name in self._checked:
            return reader
        try:
            status = path.stat()
        except FileNotFoundError:
            return None
        identity = (status.st_dev, status.st_ino)
        if reader is not None and reader.identity == identity:
            self._checked.add(path.name)
            return reader
        try:
            with open(path, "r+b") as file:
                buffer = mmap.mmap(file.fileno(), 0)
            region = Region(buffer)
        except (FileNotFoundError, ValueError):
            return None  # gone, or not a region of this version
        reader = RegionReader(region, self.window_seconds, self.max_samples, identity=identity)
        self._readers[path.name] = reader
        self._checked.add(path.name)
        return reader

    def _maybe_retire(self, path: Path, reader: RegionReader, now: float) -> None:
        """Replace a dead worker's region by a copy without its journal, once the journal no
        longer matters (its newest record has left the window)."""
        region = reader.region
        if region.journal_capacity <= 1:
            return  # already compact
        written = region.journal_written()
        if written:
            newest = region.records(written - 1)[0]
            if newest and newest[-1][0] > now - self.window_seconds:
                return
        claim = path.with_suffix(".retiring")
        try:
            descriptor = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return  # another worker is on it
        os.close(descriptor)
        try:
            cells = region.cells()
            keys = [key for key in region.keys() if key[1] + key[2] <= len(cells)]
            used = len(cells)
            compact_path = path.with_suffix(".compact")
            size = region_bytes(len(keys) + 1, used + 1, 1)
            with open(compact_path, "w+b") as file:
                file.truncate(size)
                buffer = mmap.mmap(file.fileno(), size)
            compact = Region(buffer, create=True, pid=region.pid, key_capacity=len(keys) + 1,
                             cell_capacity=used + 1, journal_capacity=1, window_seconds=self.window_seconds)
            for name, first, count in keys:
                start = compact.key(name, count)
                for offset in range(count):
                    compact.set(start + offset, cells[first + offset])
            if region.dropped():
                compact.set(compact.key(DROPPED_KEY), float(region.dropped()))
            buffer.flush()
            os.rename(compact_path, path)  # atomic: readers see the old file or the copy, never neither
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(claim)


def _made_in_place(path: Path, size: int, **layout) -> Region:
    """A region file at ``path``, made whole under another name first and then renamed: a
    reader listing the directory finds a complete region or none, never one being filled."""
    making = path.with_suffix(".making")
    descriptor = os.open(making, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(descriptor, size)
        buffer = mmap.mmap(descriptor, size)
        buffer.madvise(mmap.MADV_WILLNEED)
        for offset in range(0, size, mmap.PAGESIZE):  # touch every page now: memory stays flat later
            buffer[offset] = 0
        region = Region(buffer, create=True, **layout)
        os.rename(making, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(making)
        raise
    finally:
        os.close(descriptor)
    return region


_slot_locks: list[int] = []  # held for the life of the process


def claim_slot(directory: str | os.PathLike | None, slots: int) -> int:
    """This process's slot among the server's ``slots`` worker processes (0 alone).

    A slot is an exclusive ``flock`` on ``slot-<n>.lock``, released by the kernel when the
    process ends, so a restarted worker takes over the slot of the one that died.
    """
    if not directory or slots <= 1:
        return 0
    for slot in range(slots):
        descriptor = os.open(Path(directory) / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            continue
        _slot_locks.append(descriptor)
        return slot
    raise RuntimeError(f"more worker processes than the {slots} configured")


def shared_counter(directory: str | os.PathLike, name: str):
    """A function returning 0, 1, 2, ... across every process of the server (a locked file:
    for rare events only, such as the first requests --fail-first fails)."""
    path = Path(directory) / f"{name}.counter"

    def next_value() -> int:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            value = int(os.pread(descriptor, 32, 0) or b"0")
            os.pwrite(descriptor, b"%d" % (value + 1), 0)
            return value
        finally:
            os.close(descriptor)  # releases the lock

    return next_value
