"""The label space of the metrics: which model names get their own label, and why the region
always has room for every label there can be.

Model names come from clients (with ``--accept-any-model``, any string of any length), so
they are the one unbounded label. Here they are bounded:

* a model's label in the region's keys is its index in the server's **label table**
  (``"0"``, ``"1"``, ...) or ``"other"``, never the name itself: any length and any
  character (``|``, quotes, newlines) are safe, and no name can reach into another's keys;
* the table holds the configured ``--models`` first (always, whatever their length), then
  client names, first come first served, until it holds ``max(budget, len(--models))``;
* any other name -- once the table is full, longer than ``MODEL_NAME_MAX_BYTES``, or
  ``__other__`` itself -- is counted under ``OTHER_MODEL``; the request is answered as usual.

With ``--workers N`` the table is one file in the server's shared directory
(``model-labels.table``), appended to under an exclusive ``flock`` and read by every worker,
so all of them give a name the same label (or all count it as other) and the figures summed
across their regions stay consistent. A worker takes the lock only for a name it has not
seen while the table is not full: at most ``budget + 1`` times in its life.

``region_need`` is the arithmetic: what the budget, every endpoint with every error status,
every KV worker and every (model label, simulated engine) pair with every finish reason take
in a region; each process's region is made that size (``region_capacity``). vLLM's families
are per model and engine, so their cells grow with the product: ``MAX_ENGINE_LABELS`` bounds
it (``Settings`` refuses more), which bounds a region's keys and cells at about 50 MB (56 MB for a
context of 10^12 tokens, whose token histograms have more buckets).
"""

from __future__ import annotations

import fcntl
import os
import struct
from collections.abc import Iterable
from pathlib import Path

from fakeai.metrics.schema import BUCKETS, CELLS, METRICS, SPILL, Metric, bucket_sets

__all__ = (
    "DEFAULT_MODEL_LABELS",
    "ERROR_STATUSES",
    "FINISH_REASONS",
    "MAX_ENDPOINTS",
    "MAX_ENGINE_LABELS",
    "MAX_KV_WORKERS",
    "MAX_MODEL_LABELS",
    "MODEL_NAME_MAX_BYTES",
    "OTHER_KEY",
    "OTHER_MODEL",
    "ModelLabels",
    "engines_per_process",
    "region_capacity",
    "region_need",
)

OTHER_MODEL = "__other__"
"""The model name shown (JSON ``models``, Prometheus ``model_name``) for every request whose
model has no label of its own."""
OTHER_KEY = "other"
"""The other bucket's label in region keys (a table index is all digits: no collision)."""
MODEL_NAME_MAX_BYTES = 1024
"""Longest client model name (UTF-8 bytes) that may get a label of its own: the table stays
small (at most ``MAX_MODEL_LABELS`` of these) and so do the exported label values."""
DEFAULT_MODEL_LABELS = 100
MAX_MODEL_LABELS = 1000
"""The largest budget a server accepts (``--max-model-labels``, also the most ``--models``)."""

MAX_ENDPOINTS = 64
"""Endpoint labels a region has room for: the app's route templates and ``unmatched`` (a
bounded set, fixed by the code; a test checks the app has no more)."""
ERROR_STATUSES = tuple(range(400, 600))
"""Statuses that get an error counter (HTTP statuses are 100-599; below 400 is no error)."""
FINISH_REASONS = ("stop", "length", "abort", "content_filter", "tool_calls")
"""Finish reasons a success counter is made for (fakeai sends the first three)."""
MAX_KV_WORKERS = 256
"""Simulated KV workers one process routes among at most (``--kv-workers``' bound)."""
MAX_ENGINE_LABELS = 8192
"""(model label, simulated engine) pairs one process may record vLLM's families for: model
labels (the budget and ``__other__``) times the KV workers the process routes among. Each pair
takes about 5.6 KB of a region (25 keys of 128 bytes, about 300 cells of 8 bytes)."""


def engines_per_process(kv_workers: int, workers: int) -> int:
    """Simulated KV workers one server process routes among at most (``app.kv_worker_ids``)."""
    return max(1, -(-kv_workers // max(1, workers)))

_TABLE = "model-labels.table"
_LENGTH = struct.Struct("<I")


def region_need(
    model_labels: int,
    *,
    endpoints: int = MAX_ENDPOINTS,
    kv_workers: int = MAX_KV_WORKERS,
    engines: int = 1,
    metrics: Iterable[Metric] = METRICS,
    buckets: dict[str, tuple[float, ...]] = BUCKETS,
) -> tuple[int, int]:
    """``(keys, cells)`` a region needs at most for ``model_labels`` model labels (the other
    bucket included), ``endpoints`` endpoints, ``kv_workers`` KV workers and every model on
    each of ``engines`` simulated engines, every endpoint with every error status and every
    (model, engine) pair with every finish reason.

    It counts the declared cells (``fakeai.metrics.schema.CELLS``, and the cells of
    ``metrics`` that have their own), which are what ``MetricsWriter`` and the registry
    allocate (a test checks the two agree).
    """
    per_scope = {"global": 1, "endpoint": endpoints, "model": model_labels, "engine": model_labels * engines,
                 "kv_worker": kv_workers}
    per_label = {None: 1, "status": len(ERROR_STATUSES), "finished_reason": len(FINISH_REASONS)}
    keys = cells = 0
    for declared in (*CELLS, *(metric.cell for metric in metrics if metric.cell is not None)):
        made = per_scope[declared.scope] * per_label[declared.by]
        keys += made
        cells += made * (max(map(len, buckets.values())) + 3 if declared is SPILL else declared.size(buckets))
    return keys, cells


def region_capacity(
    model_label_budget: int, engines: int, max_model_len: int, metrics: Iterable[Metric] = METRICS
) -> tuple[int, int]:
    """``(keys, cells)`` one process's region is made with: room for ``model_label_budget``
    labels and ``__other__`` on each of its ``engines``, for a context of ``max_model_len``
    tokens (vLLM's token buckets depend on it)."""
    return region_need(model_label_budget + 1, engines=engines, metrics=metrics, buckets=bucket_sets(max_model_len))


class ModelLabels:
    """The label table of one server (see the module docstring).

    Args:
        budget: Labels for client names, the configured ones included.
        configured: The configured models: labelled first, always.
        directory: The server's shared directory (``None``: this process alone, in memory).
    """

    def __init__(self, budget: int, configured: Iterable[str] = (), directory: str | os.PathLike | None = None):
        configured = tuple(dict.fromkeys(configured))
        self.capacity = max(int(budget), len(configured))
        """Labels the table holds at most."""
        self.path = Path(directory) / _TABLE if directory else None
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._offset = 0  # bytes of the table file read so far
        self._full = False
        if self.path is None:
            for name in configured:
                self._add(name)
        else:
            with self._locked() as descriptor:
                for name in configured:
                    if name not in self._index:
                        self._append(descriptor, name)
        self._full = len(self._names) >= self.capacity

    def label(self, name: str) -> int | None:
        """``name``'s index in the table (given one now if it may have one), ``None``: other."""
        index = self._index.get(name)
        if index is not None or self._full:
            return index
        if len(name) > MODEL_NAME_MAX_BYTES or name == OTHER_MODEL:
            return None
        try:
            if len(name.encode()) > MODEL_NAME_MAX_BYTES:
                return None
        except UnicodeEncodeError:  # a lone surrogate: not text any exporter could show
            return None
        if self.path is None:
            index = self._add(name)
        else:
            try:
                with self._locked() as descriptor:
                    index = self._index.get(name)
                    if index is None and len(self._names) < self.capacity:
                        index = self._append(descriptor, name)
            except OSError:  # the directory is gone (the server is stopping) or full: other, not a failure
                return None
        self._full = len(self._names) >= self.capacity
        return index

    def names(self) -> list[str]:
        """Every labelled name, by index (what the other processes added included)."""
        if self.path is not None and not self._full:
            try:
                descriptor = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:  # the server is stopping: what was read so far
                return self._names
            try:
                self._read(descriptor)
            finally:
                os.close(descriptor)
            self._full = len(self._names) >= self.capacity
        return self._names

    # -- the table ---------------------------------------------------------------------

    def _add(self, name: str) -> int:
        index = self._index[name] = len(self._names)
        self._names.append(name)
        return index

    def _locked(self):
        return _Locked(self)

    def _read(self, descriptor: int) -> None:
        """Take in what was appended since the last read (a record still being written: later)."""
        data = b""
        while True:
            chunk = os.pread(descriptor, 1 << 16, self._offset + len(data))
            if not chunk:
                break
            data += chunk
        position = 0
        while position + _LENGTH.size <= len(data):
            (length,) = _LENGTH.unpack_from(data, position)
            end = position + _LENGTH.size + length
            if end > len(data):
                break
            self._add(data[position + _LENGTH.size : end].decode("utf-8", "surrogatepass"))
            position = end
        self._offset += position

    def _append(self, descriptor: int, name: str) -> int:
        encoded = name.encode("utf-8", "surrogatepass")
        record = _LENGTH.pack(len(encoded)) + encoded
        written = os.pwrite(descriptor, record, self._offset)
        if written != len(record):  # pragma: no cover - a full /dev/shm
            raise OSError(f"could not extend {self.path}")
        self._offset += written
        return self._add(name)


class _Locked:
    """The table file, opened and locked exclusively, read up to date."""

    def __init__(self, labels: ModelLabels) -> None:
        self.labels = labels
        self.descriptor = -1

    def __enter__(self) -> int:
        self.descriptor = os.open(self.labels.path, os.O_RDWR | os.O_CREAT, 0o600)  # type: ignore[arg-type]
        try:
            fcntl.flock(self.descriptor, fcntl.LOCK_EX)
            self.labels._read(self.descriptor)
        except BaseException:
            os.close(self.descriptor)
            raise
        return self.descriptor

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.descriptor)  # releases the lock
