"""Runtime control: a running server's latency model, error injection and engine limits, changed
without a restart, in every worker process.

``RuntimeControl.change(changes)`` validates the new values as ``Settings`` would (a 400 names
the setting), applies them here (``Engine.reconfigure``) and publishes them in the server's
*control block*, a small file in the directory the workers share (``fakeai serve``). Layout,
native byte order:

    0   u64  sequence: odd while a change is being written, even when complete
    8   u64  length of the document
    16  the document, JSON: ``{"generation", "settings", "prefix_cache_resets", "changes"}``

Writers take an exclusive ``flock`` on the file, read the document, write the next one between
the two sequence increments. Every process compares the sequence with the one it applied when a
generation request is admitted (``poll``: one read of shared memory) and when it answers
``/health/detailed`` or ``/admin/config``; on a difference it copies the document (again if the
sequence moved meanwhile), applies ``settings`` over its start-up settings, and resets its
prefix caches if ``prefix_cache_resets`` grew. ``changes`` keeps the newest 50 changes (who,
when, what); each one is logged by the process that made it and the one that applied it.
Without a shared directory (one process) the block lives in this process's memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import struct
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from fakeai.api.errors import APIError
from fakeai.config import Settings, SettingsError

if TYPE_CHECKING:
    from fakeai.api.engine import Engine

__all__ = ("CONTROL_FILE", "RUNTIME_SETTINGS", "RuntimeControl")

_log = logging.getLogger("uvicorn.error")
"""Where changes are logged: uvicorn's server log, which ``fakeai serve`` prints at INFO (nothing
configures a handler for the ``fakeai`` logger, so its INFO lines were dropped)."""

CONTROL_FILE = "control"
CONTROL_BYTES = 256 * 1024
_HEAD = struct.Struct("=QQ")
_LOG_ENTRIES = 50
RUNTIME_SETTINGS = (
    # the latency model
    "ttft_ms", "prefill_ms_per_token", "ttft_jitter", "itl_ms", "itl_jitter", "load_slowdown", "zero_latency",
    # error injection
    "error_rate", "error_kinds", "stream_error_rate", "retry_after_seconds",
    # the engine model's limits
    "max_num_seqs", "max_num_batched_tokens",
)
"""The settings ``PATCH /admin/config`` may change (the others need a restart)."""
_encode = msgspec.json.encode
_decode = msgspec.json.decode


def _shown(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class RuntimeControl:
    """This process's view of the server's runtime changes, and the way to make one.

    Args:
        engine: What a change reconfigures.
        settings: The start-up settings (changes apply over them).
        shared_dir: The server's shared directory (``None``: one process, nothing shared).
        publish: Publishes a KV worker's state (``MetricsRegistry.kv_publish``), after a reset.
        wall_clock: Stamps the changes.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        shared_dir: str | None = None,
        publish: Callable[[int, tuple[int, int, int, int]], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.base = settings
        self.publish = publish
        self.wall_clock = wall_clock
        self.document: dict[str, Any] = {"generation": 0, "settings": {}, "prefix_cache_resets": 0, "changes": []}
        """The newest change this process applied."""
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._local = bytearray(CONTROL_BYTES)
        if shared_dir is not None:
            path = Path(shared_dir) / CONTROL_FILE
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            if os.fstat(self._fd).st_size < CONTROL_BYTES:
                os.ftruncate(self._fd, CONTROL_BYTES)  # zeros: sequence 0, nothing changed yet
            self._map = mmap.mmap(self._fd, CONTROL_BYTES)
        self._buffer = self._map if self._map is not None else self._local
        self._sequence = memoryview(self._buffer)[:8].cast("Q")
        self._applied = 0
        """The sequence this process applied."""

    def close(self) -> None:
        """Unmap the shared block (at shutdown); a late call then sees this process's own copy."""
        if self._map is None:
            return
        self._sequence.release()
        self._local[:] = self._map[:CONTROL_BYTES]
        self._buffer = self._local
        self._sequence = memoryview(self._local)[:8].cast("Q")
        self._map.close()
        self._map = None
        os.close(self._fd)
        self._fd = -1

    # -- reading ---------------------------------------------------------------------------

    def poll(self) -> None:
        """Apply the newest change if another process made one (one read of shared memory)."""
        if self._sequence[0] != self._applied:
            self._refresh()

    def _read(self) -> tuple[int, dict[str, Any] | None]:
        """``(sequence, document)`` as the block holds it (``None``: none complete yet)."""
        buffer = self._buffer
        for _ in range(100):
            sequence, length = _HEAD.unpack_from(buffer, 0)
            if sequence % 2:
                time.sleep(0)
                continue
            payload = bytes(buffer[16 : 16 + min(length, CONTROL_BYTES - 16)])
            if _HEAD.unpack_from(buffer, 0)[0] == sequence:
                return sequence, (_decode(payload) if sequence else None)
        return self._applied, None  # a writer died mid-change: keep what we have until the next one

    def _refresh(self) -> None:
        sequence, document = self._read()
        if document is not None and sequence != self._applied:
            self._apply(document, sequence)

    def _apply(self, document: dict[str, Any], sequence: int) -> None:
        settings = self.base.replace(**document["settings"])
        self.engine.reconfigure(settings)
        if document["prefix_cache_resets"] > self.document["prefix_cache_resets"]:
            dropped = self.engine.kv_cache.reset()
            if self.publish is not None:
                for index, worker in enumerate(self.engine.kv_cache.ids):
                    self.publish(worker, self.engine.kv_cache.state(index))
            _log.info("fakeai: prefix caches reset in process %s (%s blocks dropped)", os.getpid(), dropped)
        if document["generation"] != self.document["generation"]:
            _log.info("fakeai: runtime settings generation %s applied in process %s: %s", document["generation"],
                      os.getpid(), document["settings"])
        self.document = document
        self._applied = sequence

    def view(self) -> dict[str, Any]:
        """What ``GET /admin/config`` and ``/health/detailed`` show: the generation, every runtime
        setting's value now, and the newest changes."""
        self.poll()
        settings = self.engine.settings
        return {
            "generation": self.document["generation"],
            "process": os.getpid(),
            "settings": {name: _shown(getattr(settings, name)) for name in RUNTIME_SETTINGS},
            "prefix_cache_resets": self.document["prefix_cache_resets"],
            "changes": self.document["changes"],
        }

    # -- changing --------------------------------------------------------------------------

    def change(self, changes: Mapping[str, Any], source: str = "admin") -> dict[str, Any]:
        """Apply ``changes`` (runtime settings by name) in every process of the server; the new
        view. ``APIError`` 400 for a setting that cannot change at run time or a bad value."""
        if not isinstance(changes, Mapping) or not changes:
            raise APIError(400, "Send a JSON object of runtime settings to change, e.g. {\"itl_ms\": 20}.",
                           code="invalid_value")
        for name in changes:
            if name not in RUNTIME_SETTINGS:
                raise APIError(
                    400,
                    f"'{name}' is not a setting that can change at run time; these can: {', '.join(RUNTIME_SETTINGS)}.",
                    param=str(name),
                    code="unknown_setting",
                )
        with self._locked():
            sequence, document = self._read()
            document = document or {"generation": 0, "settings": {}, "prefix_cache_resets": 0, "changes": []}
            merged = {**document["settings"], **changes}
            try:
                settings = self.base.replace(**merged)
            except SettingsError as exc:
                raise APIError(400, f"Invalid runtime setting: {exc}", param=next(iter(changes)),
                               code="invalid_value") from None
            current = self.engine.settings if sequence == self._applied else self.base.replace(**document["settings"])
            shown = {name: [_shown(getattr(current, name)), _shown(getattr(settings, name))] for name in changes}
            generation = document["generation"] + 1
            entry = {"generation": generation, "at": self.wall_clock(), "process": os.getpid(), "source": source,
                     "changes": shown}
            new = {"generation": generation,
                   "settings": {name: _shown(getattr(settings, name)) for name in merged},
                   "prefix_cache_resets": document["prefix_cache_resets"],
                   "changes": [*document["changes"], entry][-_LOG_ENTRIES:]}
            self._write(new, sequence)
        _log.info("fakeai: runtime settings changed (generation %s, by %s in process %s): %s", generation, source,
                  os.getpid(), {name: f"{old} -> {value}" for name, (old, value) in shown.items()})
        return self.view()

    def reset_prefix_cache(self, source: str = "admin") -> dict[str, Any]:
        """Drop every cached prefix block no running request uses, in every process."""
        with self._locked():
            sequence, document = self._read()
            document = document or {"generation": 0, "settings": {}, "prefix_cache_resets": 0, "changes": []}
            generation = document["generation"] + 1
            entry = {"generation": generation, "at": self.wall_clock(), "process": os.getpid(), "source": source,
                     "action": "reset_prefix_cache"}
            new = {**document, "generation": generation, "prefix_cache_resets": document["prefix_cache_resets"] + 1,
                   "changes": [*document["changes"], entry][-_LOG_ENTRIES:]}
            self._write(new, sequence)
        _log.info("fakeai: prefix caches reset (generation %s, by %s in process %s)", generation, source,
                  os.getpid())
        return self.view()

    @contextlib.contextmanager
    def _locked(self):
        if self._fd < 0:
            yield
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _write(self, document: dict[str, Any], sequence: int) -> None:
        """Publish ``document`` (under the lock) and apply it here."""
        payload = _encode(document)
        while len(payload) > CONTROL_BYTES - 16 and document["changes"]:
            document["changes"] = document["changes"][1:]
            payload = _encode(document)
        buffer = self._buffer
        base = sequence + (sequence & 1)  # a writer that died mid-change left it odd
        _HEAD.pack_into(buffer, 0, base + 1, len(payload))
        buffer[16 : 16 + len(payload)] = payload
        _HEAD.pack_into(buffer, 0, base + 2, len(payload))
        self._apply(document, base + 2)
