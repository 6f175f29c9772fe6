# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled metrics region and writer: the fast twin of ``fakeai._region_py``.

``fakeai/_region_py.py`` is the specification and ``fakeai/_layout.py`` the layout both
follow (this module imports the layout, never the twin). Cells are updated in place between
the two ``seq`` increments with atomic stores and fences; journal records are copied as one
packed struct; ``replay`` pushes records into compiled windows without building Python
objects per record. The writer records plain numbers only: a simulated KV worker's state is
handed to it (``kv_state``, ``publish``, ``record(..., kv_state)``).
"""

from cpython cimport array
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.math cimport INFINITY, NAN, isfinite
from libc.string cimport memcpy, memmove

from fakeai._window cimport SlidingWindow

# ---------------------------------------------------------------------------------------
# The shared-memory metrics region (fakeai/_layout.py gives the layout and the protocol)
# ---------------------------------------------------------------------------------------

cdef extern from *:
    """
    static inline unsigned long long fakeai_load(const unsigned long long* p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    }
    static inline void fakeai_store(unsigned long long* p, unsigned long long v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE);
    }
    static inline void fakeai_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
    """
    unsigned long long fakeai_load(const unsigned long long* p) nogil
    void fakeai_store(unsigned long long* p, unsigned long long v) nogil
    void fakeai_fence() nogil

from fakeai._layout import (
    CLIENT_CLOSED_REQUEST, HEADER_BYTES, HEADER_FIELDS, KEY_BYTES, KEY_NAME_BYTES, RECORD, REGION_MAGIC,
    REGION_VERSION, STREAM_COMPLETED, STREAM_FAILED, STREAM_PLAIN, RequestFacts, process_alive, region_bytes,
)

cdef packed struct Record:
    double finished_at
    double duration
    double ttft
    double itl
    unsigned int prompt_tokens
    unsigned int completion_tokens
    unsigned int endpoint_id
    unsigned short status
    unsigned char stream
    unsigned char flags
    unsigned int kv_prompt
    unsigned int kv_cached
    unsigned int kv_oracle
    unsigned int kv_worker

assert sizeof(Record) == RECORD.size

cdef Py_ssize_t _HEADER_BYTES = HEADER_BYTES
cdef Py_ssize_t _KEY_BYTES = KEY_BYTES
cdef Py_ssize_t _KEY_NAME_BYTES = KEY_NAME_BYTES
cdef int STREAM_PLAIN_ = STREAM_PLAIN
cdef int STREAM_COMPLETED_ = STREAM_COMPLETED
cdef int STREAM_FAILED_ = STREAM_FAILED
cdef int CLIENT_CLOSED_REQUEST_ = CLIENT_CLOSED_REQUEST
cdef array.array _DOUBLES = array.array("d")
"""The template ``Region.cells`` clones its copy from."""
cdef Py_ssize_t _MAGIC = HEADER_FIELDS["magic"] // 8
cdef Py_ssize_t _VERSION = HEADER_FIELDS["version"] // 8
cdef Py_ssize_t _PID = HEADER_FIELDS["pid"] // 8
cdef Py_ssize_t _SEQ = HEADER_FIELDS["seq"] // 8
cdef Py_ssize_t _KEYS_USED = HEADER_FIELDS["keys_used"] // 8
cdef Py_ssize_t _CELLS_USED = HEADER_FIELDS["cells_used"] // 8
cdef Py_ssize_t _KEY_CAPACITY = HEADER_FIELDS["key_capacity"] // 8
cdef Py_ssize_t _CELL_CAPACITY = HEADER_FIELDS["cell_capacity"] // 8
cdef Py_ssize_t _JOURNAL_CAPACITY = HEADER_FIELDS["journal_capacity"] // 8
cdef Py_ssize_t _JOURNAL_WRITTEN = HEADER_FIELDS["journal_written"] // 8
cdef Py_ssize_t _DROPPED = HEADER_FIELDS["dropped"] // 8
cdef Py_ssize_t _WINDOW_SECONDS = HEADER_FIELDS["window_seconds"] // 8


cdef inline Py_ssize_t _bucket(const double* bounds, Py_ssize_t size, double value) noexcept:
    """The bucket of ``value``: the first of the ascending ``bounds`` at least ``value`` (``size``:
    +Inf), by binary search."""
    cdef Py_ssize_t low = 0, high = size, middle
    while low < high:
        middle = (low + high) >> 1
        if bounds[middle] < value:
            low = middle + 1
        else:
            high = middle
    return low


cdef class Region:
    """A metrics region over a writable buffer; see ``fakeai._region_py.Region``."""

    cdef object _buffer
    cdef unsigned char[::1] _view
    cdef unsigned long long* _header
    cdef unsigned char* _keys
    cdef double* _cells
    cdef Record* _journal
    cdef readonly unsigned long long pid
    cdef readonly Py_ssize_t key_capacity
    cdef readonly Py_ssize_t cell_capacity
    cdef readonly Py_ssize_t journal_capacity
    cdef readonly double window_seconds
    cdef dict _key_index

    def __init__(self, buffer, *, bint create=False, unsigned long long pid=0, Py_ssize_t key_capacity=2048,
                 Py_ssize_t cell_capacity=65536, Py_ssize_t journal_capacity=65536, double window_seconds=5.0):
        self._buffer = buffer
        self._view = buffer
        self._header = <unsigned long long*>&self._view[0]
        cdef double* window_field = <double*>&self._header[_WINDOW_SECONDS]
        if create:
            if self._view.shape[0] < region_bytes(key_capacity, cell_capacity, journal_capacity):
                raise ValueError("the buffer is smaller than the region")
            self._header[_VERSION] = REGION_VERSION
            self._header[_PID] = pid
            self._header[_KEY_CAPACITY] = key_capacity
            self._header[_CELL_CAPACITY] = cell_capacity
            self._header[_JOURNAL_CAPACITY] = journal_capacity
            window_field[0] = window_seconds
            fakeai_store(&self._header[_MAGIC], REGION_MAGIC)
        elif fakeai_load(&self._header[_MAGIC]) != REGION_MAGIC or self._header[_VERSION] != REGION_VERSION:
            raise ValueError("not a fakeai metrics region of this version")
        self.pid = self._header[_PID]
        self.key_capacity = self._header[_KEY_CAPACITY]
        self.cell_capacity = self._header[_CELL_CAPACITY]
        self.journal_capacity = self._header[_JOURNAL_CAPACITY]
        self.window_seconds = window_field[0]
        self._keys = &self._view[_HEADER_BYTES]
        self._cells = <double*>&self._view[_HEADER_BYTES + self.key_capacity * _KEY_BYTES]
        self._journal = <Record*>&self._view[_HEADER_BYTES + self.key_capacity * _KEY_BYTES + self.cell_capacity * 8]
        self._key_index = {}

    # -- writing ---------------------------------------------------------------------------

    def key(self, str name, Py_ssize_t cells=1):
        found = self._key_index.get(name)
        if found is not None:
            return found
        cdef bytes encoded = name.encode()
        if len(encoded) > _KEY_NAME_BYTES:
            raise ValueError(f"metric key longer than {_KEY_NAME_BYTES} bytes: {name!r}")
        cdef unsigned long long keys_used = self._header[_KEYS_USED], cells_used = self._header[_CELLS_USED]
        if <Py_ssize_t>keys_used >= self.key_capacity or <Py_ssize_t>(cells_used + cells) > self.cell_capacity:
            raise MemoryError("the metrics region is full")
        cdef unsigned char* entry = self._keys + keys_used * _KEY_BYTES
        (<unsigned int*>entry)[0] = <unsigned int>cells_used
        (<unsigned int*>entry)[1] = <unsigned int>cells
        memcpy(entry + 8, <const char*>encoded, len(encoded))
        self._header[_CELLS_USED] = cells_used + cells
        fakeai_store(&self._header[_KEYS_USED], keys_used + 1)
        self._key_index[name] = <Py_ssize_t>cells_used
        return <Py_ssize_t>cells_used

    def add(self, Py_ssize_t cell, double value):
        self._cells[cell] += value

    def set(self, Py_ssize_t cell, double value):
        self._cells[cell] = value

    cdef inline void _begin(self) noexcept:
        fakeai_store(&self._header[_SEQ], self._header[_SEQ] + 1)
        fakeai_fence()

    cdef inline void _end(self) noexcept:
        fakeai_fence()
        fakeai_store(&self._header[_SEQ], self._header[_SEQ] + 1)

    def begin(self):
        self._begin()

    def end(self):
        self._end()

    def observe(self, Py_ssize_t block, bounds, double value, Py_ssize_t times=1):
        cdef Py_ssize_t size = len(bounds), bucket = size, index
        for index in range(size):
            if value <= bounds[index]:
                bucket = index
                break
        self._cells[block + bucket] += times
        self._cells[block + size + 1] += value * times
        self._cells[block + size + 2] += times

    cdef inline void _observe(self, Py_ssize_t block, const double* bounds, Py_ssize_t size, double value) noexcept:
        self._observe_n(block, bounds, size, value, 1.0)

    cdef inline void _observe_n(self, Py_ssize_t block, const double* bounds, Py_ssize_t size, double value,
                                double times) noexcept:
        self._cells[block + _bucket(bounds, size, value)] += times
        self._cells[block + size + 1] += value * times
        self._cells[block + size + 2] += times

    cdef int _observe_gaps(self, Py_ssize_t block, const double* bounds, Py_ssize_t size, list offsets,
                           object choice_tokens) except -1:
        """See the twin's ``observe_gaps``. The buckets of the last two runs of gaps are known, so
        a gap in either is counted without a search (equal gaps, or gaps that straddle a bound as
        a jitter-free ITL on a bucket's bound does through rounding), each run written once."""
        cdef Py_ssize_t bucket = 0, run = 0, other_bucket = 0, other_run = 0, observed = 0, index, end
        cdef double lower = INFINITY, upper = -INFINITY, other_lower = INFINITY, other_upper = -INFINITY
        cdef double gap, total = 0.0, previous, current
        cdef double* cells = self._cells
        cdef long long tokens
        for tokens in choice_tokens:
            end = min(<Py_ssize_t>tokens, len(offsets))
            if end < 2:
                continue
            previous = offsets[0]
            for index in range(1, end):
                current = offsets[index]
                gap = current - previous
                previous = current
                total += gap
                if lower < gap <= upper:
                    run += 1
                elif other_lower < gap <= other_upper:
                    other_run += 1
                else:  # a third bucket: the other run is written, the last one becomes the other
                    if other_run:
                        cells[block + other_bucket] += other_run
                    other_bucket, other_run, other_lower, other_upper = bucket, run, lower, upper
                    bucket = _bucket(bounds, size, gap)
                    run = 1
                    lower = bounds[bucket - 1] if bucket > 0 else -INFINITY
                    upper = bounds[bucket] if bucket < size else INFINITY
            observed += end - 1
        if other_run:
            cells[block + other_bucket] += other_run
        if run:
            cells[block + bucket] += run
        if observed:
            cells[block + size + 1] += total
            cells[block + size + 2] += observed
        return 0

    def observe_gaps(self, Py_ssize_t block, bounds, list offsets not None, choice_tokens not None):
        """See the twin's ``observe_gaps``."""
        cdef _Bounds chosen = _Bounds(bounds)
        self._observe_gaps(block, chosen.values, chosen.size, offsets, choice_tokens)

    cdef void _append(self, Record* record) noexcept:
        cdef unsigned long long written = self._header[_JOURNAL_WRITTEN]
        cdef Record* slot = &self._journal[written % <unsigned long long>self.journal_capacity]
        if written >= <unsigned long long>self.journal_capacity and (
                slot.finished_at > record.finished_at - self.window_seconds):
            self._header[_DROPPED] += 1
        memcpy(slot, record, sizeof(Record))
        fakeai_store(&self._header[_JOURNAL_WRITTEN], written + 1)

    def append(self, tuple record):
        cdef Record item
        (item.finished_at, item.duration, item.ttft, item.itl, item.prompt_tokens, item.completion_tokens,
         item.endpoint_id, item.status, item.stream, item.flags, item.kv_prompt, item.kv_cached, item.kv_oracle,
         item.kv_worker) = record
        self._append(&item)

    # -- reading ---------------------------------------------------------------------------

    def keys(self, Py_ssize_t start=0):
        cdef Py_ssize_t index, used = fakeai_load(&self._header[_KEYS_USED])
        cdef unsigned char* entry
        result = []
        for index in range(max(start, 0), used):
            entry = self._keys + index * _KEY_BYTES
            name = (<bytes>(<char*>entry + 8)[:_KEY_NAME_BYTES]).rstrip(b"\0").decode()
            result.append((name, (<unsigned int*>entry)[0], (<unsigned int*>entry)[1]))
        return result

    def cells(self):
        # the cells in use copied straight into an array of doubles: no buffer of the region's
        # room (megabytes, mapped and unmapped by every read) and no float object per cell
        cdef Py_ssize_t used = 0, attempts = 0
        cdef array.array copy = array.clone(_DOUBLES, 0, zero=False)
        cdef unsigned long long before
        cdef bint settled = False
        while not settled:
            before = fakeai_load(&self._header[_SEQ])
            attempts += 1
            if before & 1:  # mid-update: wait for it, unless its writer died (then as it is)
                if attempts % 1024 or process_alive(self.pid):
                    continue
                settled = True
            used = min(<Py_ssize_t>fakeai_load(&self._header[_CELLS_USED]), self.cell_capacity)
            array.resize(copy, used)
            if used:
                memcpy(copy.data.as_doubles, self._cells, used * sizeof(double))
            fakeai_fence()
            settled = settled or fakeai_load(&self._header[_SEQ]) == before
        return copy

    def seq(self):
        return fakeai_load(&self._header[_SEQ])

    def journal_written(self):
        return fakeai_load(&self._header[_JOURNAL_WRITTEN])

    def dropped(self):
        return self._header[_DROPPED]

    cdef Record* _copy_since(self, unsigned long long start, unsigned long long limit, unsigned long long* first_out,
                             unsigned long long* count_out, unsigned long long* end_out) except NULL:
        """Copy the records from index ``start`` on that the ring still holds (at most ``limit``
        of them when ``limit`` is not 0); keep only those the writer cannot have overwritten
        while they were copied (``*first_out`` is the index of the first kept, ``*count_out``
        how many, ``*end_out`` the index after the last copied). The caller frees the copy."""
        cdef unsigned long long end = fakeai_load(&self._header[_JOURNAL_WRITTEN])
        cdef unsigned long long capacity = self.journal_capacity
        cdef unsigned long long first = max(start, end - capacity if end > capacity else 0)
        if limit and end > first + limit:
            end = first + limit
        cdef unsigned long long count = end - first if end > first else 0, index, safe_from, skip
        cdef Record* copy = <Record*>PyMem_Malloc(max(count, 1) * sizeof(Record))
        if copy == NULL:
            raise MemoryError()
        for index in range(count):
            memcpy(&copy[index], &self._journal[(first + index) % capacity], sizeof(Record))
        fakeai_fence()
        safe_from = fakeai_load(&self._header[_JOURNAL_WRITTEN])
        safe_from = safe_from - capacity if safe_from > capacity else 0
        skip = min(safe_from - first if safe_from > first else 0, count)
        if skip:
            memmove(copy, copy + skip, (count - skip) * sizeof(Record))
        first_out[0] = first + skip
        count_out[0] = count - skip
        end_out[0] = end
        return copy

    def records(self, unsigned long long start, unsigned long long limit=0):
        cdef unsigned long long first, count, end, index
        cdef Record* copy = self._copy_since(start, limit, &first, &count, &end)
        cdef Record* item
        try:
            records = []
            for index in range(count):
                item = &copy[index]
                records.append((item.finished_at, item.duration, item.ttft, item.itl, item.prompt_tokens,
                                item.completion_tokens, item.endpoint_id, item.status, item.stream, item.flags,
                                item.kv_prompt, item.kv_cached, item.kv_oracle, item.kv_worker))
            return records, first, first - start
        finally:
            PyMem_Free(copy)

    cdef int _replay(self, Record* copy, Py_ssize_t count, dict endpoints, SlidingWindow ttft_window,
                     SlidingWindow tps_window, SlidingWindow itl_window, SlidingWindow kv_prompt_window,
                     SlidingWindow kv_cached_window, SlidingWindow kv_oracle_window,
                     SlidingWindow kv_hit_window) except -1:
        cdef Py_ssize_t index
        cdef Record* item
        cdef object windows
        cdef unsigned int last_id = 0xFFFFFFFF
        cdef SlidingWindow latency = None, errors = None, prompt = None, completion = None
        for index in range(count):
            item = &copy[index]
            if item.endpoint_id != last_id:
                windows = endpoints.get(item.endpoint_id)
                last_id = item.endpoint_id
                if windows is None:
                    latency = None
                else:
                    latency, errors, prompt, completion = windows
            if latency is None:
                continue
            latency._push(item.finished_at, item.duration)
            prompt._push(item.finished_at, item.prompt_tokens)
            completion._push(item.finished_at, item.completion_tokens)
            if item.status >= 400:
                errors._push(item.finished_at, item.duration)
            if item.stream != STREAM_PLAIN_:
                if item.ttft == item.ttft:
                    ttft_window._push(item.finished_at, item.ttft)
                if item.itl == item.itl:
                    itl_window._push(item.finished_at, item.itl)
                if item.duration > 0.0 and item.completion_tokens and isfinite(item.completion_tokens / item.duration):
                    tps_window._push(item.finished_at, item.completion_tokens / item.duration)
            if item.flags & 1:
                kv_prompt_window._push(item.finished_at, item.kv_prompt)
                kv_cached_window._push(item.finished_at, item.kv_cached)
                kv_oracle_window._push(item.finished_at, item.kv_oracle)
                if item.kv_cached:
                    kv_hit_window._push(item.finished_at, item.kv_cached)
        return 0

    def replay(self, unsigned long long start, dict endpoints, tuple streaming, tuple kv, unsigned long long limit=0):
        """Journal records from index ``start`` into windows, at most ``limit`` of them when
        ``limit`` is not 0 (see the twin's ``replay``); ``(the next index to read, records lost)``."""
        cdef unsigned long long first, count, end
        cdef Record* copy = self._copy_since(start, limit, &first, &count, &end)
        try:
            self._replay(copy, count, endpoints, streaming[0], streaming[1], streaming[2], kv[0], kv[1], kv[2], kv[3])
            return end, first - start
        finally:
            PyMem_Free(copy)


# ---------------------------------------------------------------------------------------
# The writer: one process's cells and journal records
# ---------------------------------------------------------------------------------------

_KV_SLOTS = ("routed", "prompt_tokens", "cached_tokens", "blocks", "capacity_blocks", "active_requests", "evictions")
ENGINE_SLOTS = ("prompt", "running", "waiting", "generation", "cached", "preemptions", "ttft", "itl", "tpot", "e2e",
                "queue", "inference", "prefill", "decode", "prompt_histogram", "generation_histogram",
                "max_generation_histogram", "max_tokens_histogram", "prefill_kv_histogram", "n_histogram")
PRESET_REASONS = ("stop", "length", "abort")
_ABORT = "abort"


cdef class _Bounds:
    cdef double* values
    cdef Py_ssize_t size
    cdef readonly tuple bounds

    def __cinit__(self, bounds):
        self.bounds = tuple(float(bound) for bound in bounds)
        self.size = len(self.bounds)
        self.values = <double*>PyMem_Malloc(max(self.size, 1) * sizeof(double))
        if self.values == NULL:
            raise MemoryError()
        cdef Py_ssize_t index
        for index in range(self.size):
            self.values[index] = self.bounds[index]

    def __dealloc__(self):
        PyMem_Free(self.values)


cdef class EndpointCells:
    """One endpoint's cells; see ``fakeai._region_py.EndpointCells``."""

    cdef object _writer
    cdef readonly str name
    cdef readonly Py_ssize_t requests, id, prompt, completion
    cdef readonly Py_ssize_t duration_histogram, prompt_histogram, completion_histogram
    cdef readonly dict errors
    cdef readonly bint lossy
    cdef int _last_status
    cdef Py_ssize_t _last_error_cell, _spill

    def __init__(self, writer, str name):
        self._writer = writer
        self.name = name
        self._last_status = -1
        self._spill = writer.spill
        cell, key = writer.cell, writer.key_of
        self.requests = cell(*key("endpoint", "requests", name))
        self.id = self.requests
        self.prompt = cell(*key("endpoint", "prompt", name))
        self.completion = cell(*key("endpoint", "completion", name))
        self.duration_histogram = cell(*key("endpoint", "duration_histogram", name))
        self.prompt_histogram = cell(*key("endpoint", "prompt_histogram", name))
        self.completion_histogram = cell(*key("endpoint", "completion_histogram", name))
        self.errors = {}
        self.lossy = writer.spill in (self.requests, self.prompt, self.completion, self.duration_histogram,
                                      self.prompt_histogram, self.completion_histogram)

    cdef inline Py_ssize_t _error_cell(self, int status) except -2:
        if status == self._last_status:
            return self._last_error_cell
        cdef Py_ssize_t cell = self.error_cell(status)
        if cell != self._spill:
            self._last_status = status
            self._last_error_cell = cell
        return cell

    def error_cell(self, int status):
        cell = self.errors.get(status)
        if cell is None:
            cell = self._writer.cell(*self._writer.key_of("endpoint", "errors", self.name, str(status)))
            if cell != self._writer.spill:  # no room: tried again (and counted) next time
                self.errors[status] = cell
        return cell


cdef class ModelCells:
    """One model's admitted requests; see ``fakeai._region_py.ModelCells``."""

    cdef readonly str name
    cdef readonly Py_ssize_t running
    cdef readonly bint lossy
    cdef list _engines  # its EngineCells by engine number, as ``route`` finds them

    def __init__(self, writer, str name):
        self.name = name
        self.running = writer.cell(*writer.key_of("model", "running", name))
        self.lossy = self.running == writer.spill
        self._engines = []


cdef class EngineCells:
    """A model's cells on one simulated engine; see ``fakeai._region_py.EngineCells``."""

    cdef object _writer
    cdef readonly str model
    cdef readonly int engine
    cdef readonly Py_ssize_t prompt, running, waiting, generation, cached, preemptions, ttft, itl, tpot, e2e
    cdef readonly Py_ssize_t queue, inference, prefill, decode, prompt_histogram, generation_histogram
    cdef readonly Py_ssize_t max_generation_histogram, max_tokens_histogram, prefill_kv_histogram, n_histogram
    cdef readonly dict success
    cdef readonly bint lossy
    cdef object _last_reason
    cdef Py_ssize_t _last_success_cell, _spill

    def __init__(self, writer, str model, int engine):
        self._writer = writer
        self.model = model
        self.engine = engine
        self._last_reason = None
        self._spill = writer.spill
        label = str(engine)
        made = [writer.cell(*writer.key_of("engine", slot, model, label)) for slot in ENGINE_SLOTS]
        (self.prompt, self.running, self.waiting, self.generation, self.cached, self.preemptions, self.ttft,
         self.itl, self.tpot, self.e2e, self.queue, self.inference, self.prefill, self.decode,
         self.prompt_histogram, self.generation_histogram, self.max_generation_histogram, self.max_tokens_histogram,
         self.prefill_kv_histogram, self.n_histogram) = made
        self.lossy = writer.spill in made
        self.success = {}
        for reason in PRESET_REASONS:
            self.success_cell(reason)

    cdef inline Py_ssize_t _success_cell(self, object reason) except -2:
        if reason is self._last_reason:  # the same string object: the finish reasons are constants
            return self._last_success_cell
        cdef Py_ssize_t cell = self.success_cell(reason)
        if cell != self._spill:
            self._last_reason = reason
            self._last_success_cell = cell
        return cell

    def success_cell(self, str reason):
        cell = self.success.get(reason)
        if cell is None:
            cell = self._writer.cell(*self._writer.key_of("engine", "success", self.model, str(self.engine), reason))
            if cell != self._writer.spill:
                self.success[reason] = cell
        return cell


cdef class KVWorkerCells:
    """A simulated KV worker's cells as C fields (a tuple of Python ints costs a pointer chase
    per cell on the request path), and the evictions already counted."""

    cdef readonly Py_ssize_t routed, prompt_tokens, cached_tokens, blocks, capacity_blocks, active_requests
    cdef readonly Py_ssize_t evictions
    cdef long long evictions_seen

    def __init__(self, tuple cells):
        (self.routed, self.prompt_tokens, self.cached_tokens, self.blocks, self.capacity_blocks,
         self.active_requests, self.evictions) = cells
        self.evictions_seen = 0

    def __iter__(self):
        return iter((self.routed, self.prompt_tokens, self.cached_tokens, self.blocks, self.capacity_blocks,
                     self.active_requests, self.evictions))

    def __eq__(self, other):
        return tuple(self) == tuple(other)


# A request's facts (``fakeai._layout.RequestFacts``, a class with ``__slots__``) are read and
# set where its slots lie: each slot's offset in the object, taken once from the class's
# member descriptors (CPython's public ``PyMemberDescrObject``). Python code reaches a slot at
# the cost of one specialised instruction; the writer at the cost of a pointer read.

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member

cdef Py_ssize_t _slot_offset(str name) except -1:
    descriptor = RequestFacts.__dict__[name]
    if type(descriptor) is not _MemberDescriptor:
        raise TypeError(f"RequestFacts.{name} is not a slot")
    return (<PyMemberDescrObject*><PyObject*>descriptor).d_member.offset

_MemberDescriptor = type(RequestFacts.started)
cdef Py_ssize_t _STARTED = _slot_offset("started")
cdef Py_ssize_t _FINISHED_AT = _slot_offset("finished_at")
cdef Py_ssize_t _STATUS = _slot_offset("status")
cdef Py_ssize_t _FAILURE_STATUS = _slot_offset("failure_status")
cdef Py_ssize_t _PROMPT_TOKENS = _slot_offset("prompt_tokens")
cdef Py_ssize_t _COMPLETION_TOKENS = _slot_offset("completion_tokens")
cdef Py_ssize_t _STREAM = _slot_offset("stream")
cdef Py_ssize_t _FINISH_REASON = _slot_offset("finish_reason")
cdef Py_ssize_t _SERIES = _slot_offset("series")
cdef Py_ssize_t _MODEL_SERIES = _slot_offset("model_series")
cdef Py_ssize_t _ENGINE_SERIES = _slot_offset("engine_series")
cdef Py_ssize_t _KV_WORKER = _slot_offset("kv_worker")
cdef Py_ssize_t _KV_PROMPT = _slot_offset("kv_prompt")
cdef Py_ssize_t _KV_CACHED = _slot_offset("kv_cached")
cdef Py_ssize_t _KV_ORACLE = _slot_offset("kv_oracle")
cdef Py_ssize_t _FIRST_TOKEN_AT = _slot_offset("first_token_at")
cdef Py_ssize_t _LAST_TOKEN_AT = _slot_offset("last_token_at")
cdef Py_ssize_t _LONGEST = _slot_offset("longest")
cdef Py_ssize_t _N = _slot_offset("n")
cdef Py_ssize_t _MAX_TOKENS = _slot_offset("max_tokens")
cdef Py_ssize_t _OFFSETS = _slot_offset("offsets")
cdef Py_ssize_t _CHOICE_TOKENS = _slot_offset("choice_tokens")
cdef Py_ssize_t _QUEUE = _slot_offset("queue")
cdef Py_ssize_t _PREFILL = _slot_offset("prefill")
cdef Py_ssize_t _SCHEDULED = _slot_offset("scheduled")


cdef inline object _get(object facts, Py_ssize_t offset):
    """The value in the slot at ``offset`` of ``facts`` (a ``RequestFacts``)."""
    cdef PyObject* value = (<PyObject**>((<char*><PyObject*>facts) + offset))[0]
    if value == NULL:
        raise AttributeError("a RequestFacts slot is unset (deleted, or shadowed by a subclass's slot)")
    return <object>value


cdef inline int _set(object facts, Py_ssize_t offset, object value) except -1:
    """Put ``value`` in the slot at ``offset`` of ``facts`` (a ``RequestFacts``)."""
    cdef PyObject** slot = <PyObject**>((<char*><PyObject*>facts) + offset)
    cdef PyObject* old = slot[0]
    Py_INCREF(value)
    slot[0] = <PyObject*>value
    Py_XDECREF(old)
    return 0


cdef type _FACTS = RequestFacts

cdef inline int _check_facts(object facts) except -1:
    if type(facts) is not _FACTS and not isinstance(facts, _FACTS):
        raise TypeError(f"expected RequestFacts, got {type(facts).__name__}")
    return 0


cdef class MetricsWriter:
    """What one process records into its region; see ``fakeai._region_py.MetricsWriter``."""

    cdef readonly Region region
    cdef _Bounds _duration, _tokens, _inter_token, _vllm_ttft, _vllm_itl, _vllm_latency, _vllm_tokens, _vllm_n
    cdef dict _bounds, _endpoints, _models, _engines, _kv
    cdef readonly Py_ssize_t active_streams, completed_streams, failed_streams
    cdef readonly Py_ssize_t tokens_per_second_sum, tokens_per_second_count, stream_ttft, stream_itl, stream_itl_gaps
    cdef readonly Py_ssize_t kv_hit_requests, kv_oracle, spill, unrecorded
    cdef readonly dict layout, admitted

    def __init__(self, Region region, dict bounds not None, dict layout not None):
        self.region = region
        self.admitted = {}  # see the twin's ``admitted``
        self._bounds = {name: _Bounds(values) for name, values in bounds.items()}
        self._duration = self._bounds["duration"]
        self._tokens = self._bounds["tokens"]
        self._inter_token = self._bounds["inter_token"]
        self._vllm_ttft = self._bounds["vllm_ttft"]
        self._vllm_itl = self._bounds["vllm_inter_token"]
        self._vllm_latency = self._bounds["vllm_latency"]
        self._vllm_tokens = self._bounds["vllm_tokens"]
        self._vllm_n = self._bounds["vllm_n"]
        self._endpoints = {}
        self._models = {}
        self._engines = {}
        self._kv = {}
        self.layout = layout  # the metrics' declared one (fakeai.metrics.schema.writer_layout)
        self.spill = region.key(layout["global"]["spill"][0],
                                max((<_Bounds>chosen).size for chosen in self._bounds.values()) + 3)
        own = self.key_of
        self.unrecorded = region.key(*own("global", "unrecorded"))
        self.active_streams = region.key(*own("global", "active_streams"))
        self.completed_streams = region.key(*own("global", "completed_streams"))
        self.failed_streams = region.key(*own("global", "failed_streams"))
        self.tokens_per_second_sum = region.key(*own("global", "tokens_per_second_sum"))
        self.tokens_per_second_count = region.key(*own("global", "tokens_per_second_count"))
        self.stream_ttft = region.key(*own("global", "stream_ttft"))
        self.stream_itl = region.key(*own("global", "stream_itl"))
        self.stream_itl_gaps = region.key(*own("global", "stream_itl_gaps"))
        self.kv_hit_requests = region.key(*own("global", "kv_hit_requests"))
        self.kv_oracle = region.key(*own("global", "kv_oracle"))

    def key_of(self, str scope, str slot, *labels):
        """``(key, cells)`` of a slot's cell for ``labels``; see the twin's ``key_of``."""
        key, bounds = self.layout[scope][slot]
        name = "|".join((key, *labels))
        if bounds is None:
            return name, 1
        cdef _Bounds chosen = self._bounds[bounds]
        return name, chosen.size + 3

    @property
    def duration_bounds(self):
        return self._duration.bounds

    @property
    def token_bounds(self):
        return self._tokens.bounds

    @property
    def inter_token_bounds(self):
        return self._inter_token.bounds

    def cell(self, str name, Py_ssize_t cells=1):
        """The first cell of key ``name``, or the spill block (counted); see the twin's ``cell``."""
        try:
            return self.region.key(name, cells)
        except (MemoryError, ValueError):
            self.region._cells[self.unrecorded] += 1.0
            return self.spill

    def endpoint(self, str name):
        cells = self._endpoints.get(name)
        if cells is None:
            cells = EndpointCells(self, name)
            if not (<EndpointCells>cells).lossy:  # else made again (and its loss counted) at each use
                self._endpoints[name] = cells
        return cells

    def model(self, str name):
        cells = self._models.get(name)
        if cells is None:
            cells = ModelCells(self, name)
            if not (<ModelCells>cells).lossy:
                self._models[name] = cells
        return cells

    def engine(self, str model, int engine):
        key = (model, engine)
        cells = self._engines.get(key)
        if cells is None:
            cells = EngineCells(self, model, engine)
            if not (<EngineCells>cells).lossy:
                self._engines[key] = cells
        return cells

    def routed(self, EngineCells engine not None):
        self.region._cells[engine.running] += 1.0

    def route(self, ModelCells model not None, int worker, tuple state not None):
        """``publish(worker, state)``, then ``routed(engine(model.name, worker))``, in one call;
        returns the engine's cells. See the twin's ``route``."""
        return self._route(model, worker, state)

    cdef EngineCells _route(self, ModelCells model, int worker, tuple state):
        cdef KVWorkerCells kv = self._kv.get(worker)
        if kv is None:
            kv = self.kv_worker(worker)
        self._publish(kv, state)
        cdef EngineCells cells = None
        cdef list known = model._engines
        if 0 <= worker < len(known):
            cells = known[worker]
        if cells is None:
            cells = self.engine(model.name, worker)
            if not cells.lossy and worker >= 0:
                if worker >= len(known):
                    known.extend([None] * (worker + 1 - len(known)))
                known[worker] = cells
        self.region._cells[cells.running] += 1.0
        return cells

    def shift(self, EngineCells engine not None, double running, double waiting, double preemptions=0.0):
        """The engine model moved requests of the pair; see the twin's ``shift``."""
        cdef Region region = self.region
        region._begin()
        region._cells[engine.running] += running
        region._cells[engine.waiting] += waiting
        if preemptions:
            region._cells[engine.preemptions] += preemptions
        region._end()

    def gaps(self, EngineCells engine, double gap, Py_ssize_t gapped, Py_ssize_t zeros):
        """Inter-token gaps of one write of a stream; see the twin's ``gaps``."""
        if not isfinite(gap):
            raise ValueError(f"gap must be a finite number, got {gap!r}")
        cdef Region region = self.region
        region._begin()
        if engine is not None:
            if gapped:
                region._observe_n(engine.itl, self._vllm_itl.values, self._vllm_itl.size, gap, gapped)
            if zeros:
                region._observe_n(engine.itl, self._vllm_itl.values, self._vllm_itl.size, 0.0, zeros)
        if gapped:
            region._observe_n(self.stream_itl_gaps, self._inter_token.values, self._inter_token.size, gap, gapped)
        if zeros:
            region._observe_n(self.stream_itl_gaps, self._inter_token.values, self._inter_token.size, 0.0, zeros)
        region._end()

    def kv_worker(self, int worker):
        cells = self._kv.get(worker)
        if cells is None:
            cell = self.cell
            label = str(worker)
            made = tuple(cell(*self.key_of("kv_worker", slot, label)) for slot in _KV_SLOTS)
            cells = KVWorkerCells(made)
            if self.spill not in made:
                self._kv[worker] = cells
        return cells

    def started(self, ModelCells model):
        self.region._cells[model.running] += 1.0

    def running(self):
        """Requests running in this process (its models' running cells, summed)."""
        cdef double total = 0.0
        cdef ModelCells cells
        for cells in self._models.values():
            total += self.region._cells[cells.running]
        return <long long>total

    def stream_started(self):
        self.region._cells[self.active_streams] += 1.0

    def kv_state(self, int worker, long long blocks, long long capacity, long long active, long long evictions):
        cdef KVWorkerCells cells = self._kv.get(worker)
        if cells is None:
            cells = self.kv_worker(worker)
        self._kv_state(cells, blocks, capacity, active, evictions)

    cdef int _kv_state(self, KVWorkerCells cells, long long blocks, long long capacity, long long active,
                       long long evictions) except -1:
        cdef double* values = self.region._cells
        values[cells.blocks] = blocks
        values[cells.capacity_blocks] = capacity
        values[cells.active_requests] = active
        if evictions != cells.evictions_seen:
            values[cells.evictions] += evictions - cells.evictions_seen
            cells.evictions_seen = evictions
        return 0

    cdef int _publish(self, KVWorkerCells cells, tuple state) except -1:
        cdef long long blocks, capacity, active, evictions
        blocks, capacity, active, evictions = state
        return self._kv_state(cells, blocks, capacity, active, evictions)

    cdef void _observe_finished(self, EngineCells engine, double duration, long long prompt_tokens,
                                long long completion_tokens, long long cached, double ttft, double decode,
                                long long n, long long max_tokens, long long longest, double queue,
                                double prefill) noexcept:
        cdef Region region = self.region
        cdef _Bounds latency = self._vllm_latency, tokens = self._vllm_tokens, itl = self._vllm_itl
        region._observe(engine.e2e, latency.values, latency.size, duration)
        region._observe(engine.queue, latency.values, latency.size, queue if queue == queue else 0.0)
        region._observe(engine.prompt_histogram, tokens.values, tokens.size, prompt_tokens)
        region._observe(engine.generation_histogram, tokens.values, tokens.size, completion_tokens)
        region._observe(engine.prefill_kv_histogram, tokens.values, tokens.size,
                        prompt_tokens - cached if prompt_tokens > cached else 0)
        region._observe(engine.max_generation_histogram, tokens.values, tokens.size, longest)
        if n > 0:
            region._observe(engine.n_histogram, self._vllm_n.values, self._vllm_n.size, n)
        if max_tokens > 0:
            region._observe(engine.max_tokens_histogram, tokens.values, tokens.size, max_tokens)
        if ttft == ttft:
            if decode != decode:
                decode = 0.0
            if prefill != prefill:
                prefill = ttft
            region._observe(engine.prefill, latency.values, latency.size, prefill)
            region._observe(engine.decode, latency.values, latency.size, decode)
            region._observe(engine.inference, latency.values, latency.size, prefill + decode)
            region._observe(engine.tpot, itl.values, itl.size, decode / (longest - 1) if longest > 1 else 0.0)

    def observe_finished(self, EngineCells engine not None, double duration, long long prompt_tokens,
                         long long completion_tokens, long long cached, double ttft, double decode, long long n,
                         long long max_tokens, long long longest, double queue=NAN, double prefill=NAN):
        """See the twin's ``observe_finished``."""
        self._observe_finished(engine, duration, prompt_tokens, completion_tokens, cached, ttft, decode, n,
                               max_tokens, longest, queue, prefill)

    def publish(self, int worker, tuple state not None):
        """``kv_state`` with the four figures as one tuple; see the twin's ``publish``."""
        cdef KVWorkerCells cells = self._kv.get(worker)
        if cells is None:
            cells = self.kv_worker(worker)
        self._publish(cells, state)

    def record(self, double now, double duration, int status, long long prompt_tokens, long long completion_tokens,
               EndpointCells endpoint not None, ModelCells model=None, double ttft=NAN, double itl=NAN,
               finish_reason=None, int stream=0, int kv_worker=-1, long long kv_prompt=0, long long kv_cached=0,
               long long kv_oracle=0, tuple kv_state=None, EngineCells engine=None, double decode=NAN,
               long long n=0, long long max_tokens=0, long long longest=0, list offsets=None, choice_tokens=None,
               double queue=NAN, double prefill=NAN, bint scheduled=False):
        """See the twin's ``record``."""
        self._record(now, duration, status, prompt_tokens, completion_tokens, endpoint, model, ttft, itl,
                     finish_reason, stream, kv_worker, kv_prompt, kv_cached, kv_oracle, kv_state, engine, decode, n,
                     max_tokens, longest, offsets, choice_tokens, queue, prefill, scheduled)

    def admit(self, facts, str model, str endpoint):
        """See the twin's ``admit``."""
        _check_facts(facts)
        cdef ModelCells cells = self.admitted.get(model)
        if cells is None:
            return False
        self.region._cells[cells.running] += 1.0
        _set(facts, _MODEL_SERIES, cells)
        series = self._endpoints.get(endpoint)
        _set(facts, _SERIES, series if series is not None else self.endpoint(endpoint))
        return True

    def route_request(self, facts, int worker, tuple state not None, long long prompt_tokens,
                      long long cached_tokens, long long oracle_tokens, bint running=True):
        """See the twin's ``route_request``."""
        _check_facts(facts)
        cdef ModelCells model = _get(facts, _MODEL_SERIES)
        if model is None:
            raise TypeError("route_request needs an admitted request (facts.model_series)")
        if running:
            engine = self._route(model, worker, state)
        else:
            self.publish(worker, state)
            engine = self.engine(model.name, worker)
        _set(facts, _ENGINE_SERIES, engine)
        _set(facts, _KV_WORKER, worker)
        _set(facts, _KV_PROMPT, prompt_tokens)
        _set(facts, _KV_CACHED, cached_tokens)
        _set(facts, _KV_ORACLE, oracle_tokens)

    def finish(self, facts, tuple kv_state, clock):
        """See the twin's ``finish``."""
        _check_facts(facts)
        cdef double started = _get(facts, _STARTED)
        cdef double finished_at = _get(facts, _FINISHED_AT)
        cdef int failure = _get(facts, _FAILURE_STATUS)
        cdef bint completed = finished_at != 0.0
        cdef int status
        cdef object finish_reason
        cdef ModelCells model = _get(facts, _MODEL_SERIES)
        if completed:
            status = _get(facts, _STATUS) if failure == 0 else failure
            finish_reason = _get(facts, _FINISH_REASON) if status < 400 else None
        else:
            status = CLIENT_CLOSED_REQUEST_
            finished_at = clock()
            finish_reason = None if model is None else _ABORT
        cdef long long completion_tokens = _get(facts, _COMPLETION_TOKENS)
        cdef double duration = finished_at - started
        cdef double first_token_at = _get(facts, _FIRST_TOKEN_AT)
        cdef double ttft = first_token_at - started
        cdef double itl = NAN
        cdef int stream = STREAM_PLAIN_
        if _get(facts, _STREAM):
            stream = STREAM_COMPLETED_ if completed and failure == 0 else STREAM_FAILED_
            if completion_tokens > 1:
                itl = (duration - ttft) / (completion_tokens - 1)
        cdef EndpointCells series = _get(facts, _SERIES)
        if series is None:
            raise TypeError("finish needs the request's endpoint cells (facts.series)")
        cdef double last_token_at = _get(facts, _LAST_TOKEN_AT)
        self._record(finished_at, duration, status, _get(facts, _PROMPT_TOKENS), completion_tokens, series, model,
                     ttft, itl, finish_reason, stream, _get(facts, _KV_WORKER), _get(facts, _KV_PROMPT),
                     _get(facts, _KV_CACHED), _get(facts, _KV_ORACLE), kv_state, _get(facts, _ENGINE_SERIES),
                     last_token_at - first_token_at, _get(facts, _N), _get(facts, _MAX_TOKENS),
                     _get(facts, _LONGEST), _get(facts, _OFFSETS), _get(facts, _CHOICE_TOKENS), _get(facts, _QUEUE),
                     _get(facts, _PREFILL), _get(facts, _SCHEDULED))

    cdef int _record(self, double now, double duration, int status, long long prompt_tokens,
                     long long completion_tokens, EndpointCells endpoint, ModelCells model, double ttft, double itl,
                     object finish_reason, int stream, int kv_worker, long long kv_prompt, long long kv_cached,
                     long long kv_oracle, tuple kv_state, EngineCells engine, double decode, long long n,
                     long long max_tokens, long long longest, list offsets, object choice_tokens, double queue,
                     double prefill, bint scheduled) except -1:
        if prompt_tokens < 0:
            raise ValueError(f"prompt_tokens must not be negative, got {prompt_tokens!r}")
        if completion_tokens < 0:
            raise ValueError(f"completion_tokens must not be negative, got {completion_tokens!r}")
        if not isfinite(now):
            raise ValueError(f"now must be a finite number, got {now!r}")
        if not isfinite(duration):
            raise ValueError(f"duration must be a finite number, got {duration!r}")
        # cells a first-time status, reason or KV worker needs are allocated before the update
        cdef Py_ssize_t error_cell = endpoint._error_cell(status) if status >= 400 else -1
        cdef Py_ssize_t success_cell = -1, index, end
        cdef long long tokens
        if engine is not None and finish_reason is not None:
            success_cell = engine._success_cell(finish_reason)
        cdef KVWorkerCells kv_cells = None
        if kv_worker >= 0:
            kv_cells = self._kv.get(kv_worker)
            if kv_cells is None:
                kv_cells = self.kv_worker(kv_worker)
        cdef Region region = self.region
        cdef double* cells = region._cells
        cdef Record item
        region._begin()
        cells[endpoint.requests] += 1.0
        cells[endpoint.prompt] += prompt_tokens
        cells[endpoint.completion] += completion_tokens
        region._observe(endpoint.duration_histogram, self._duration.values, self._duration.size, duration)
        region._observe(endpoint.prompt_histogram, self._tokens.values, self._tokens.size, prompt_tokens)
        region._observe(endpoint.completion_histogram, self._tokens.values, self._tokens.size, completion_tokens)
        if error_cell >= 0:
            cells[error_cell] += 1.0
        if model is not None:
            cells[model.running] -= 1.0
        if engine is not None:
            if not scheduled:
                cells[engine.running] -= 1.0
            cells[engine.prompt] += prompt_tokens
            cells[engine.generation] += completion_tokens
            cells[engine.cached] += kv_cached
            if ttft == ttft:
                region._observe(engine.ttft, self._vllm_ttft.values, self._vllm_ttft.size, ttft)
            if offsets is not None and choice_tokens is not None:
                region._observe_gaps(engine.itl, self._vllm_itl.values, self._vllm_itl.size, offsets, choice_tokens)
            if success_cell >= 0:
                cells[success_cell] += 1.0
                self._observe_finished(engine, duration, prompt_tokens, completion_tokens, kv_cached, ttft, decode,
                                       n, max_tokens, longest, queue, prefill)
        if stream != STREAM_PLAIN_:
            cells[self.active_streams] -= 1.0
            cells[self.completed_streams if stream == STREAM_COMPLETED_ else self.failed_streams] += 1.0
            if ttft == ttft:
                region._observe(self.stream_ttft, self._duration.values, self._duration.size, ttft)
            if itl == itl:
                region._observe(self.stream_itl, self._inter_token.values, self._inter_token.size, itl)
            if duration > 0.0 and completion_tokens and isfinite(completion_tokens / duration):
                cells[self.tokens_per_second_sum] += completion_tokens / duration
                cells[self.tokens_per_second_count] += 1.0
        if kv_cells is not None:
            cells[kv_cells.routed] += 1.0
            cells[kv_cells.prompt_tokens] += kv_prompt
            cells[kv_cells.cached_tokens] += kv_cached
            if kv_cached:
                cells[self.kv_hit_requests] += 1.0
            cells[self.kv_oracle] += kv_oracle
        region._end()
        item.finished_at = now
        item.duration = duration
        item.ttft = ttft
        item.itl = itl
        item.prompt_tokens = <unsigned int>prompt_tokens
        item.completion_tokens = <unsigned int>completion_tokens
        item.endpoint_id = <unsigned int>endpoint.id
        item.status = <unsigned short>status
        item.stream = <unsigned char>stream
        item.flags = 1 if kv_worker >= 0 else 0
        item.kv_prompt = <unsigned int>kv_prompt
        item.kv_cached = <unsigned int>kv_cached
        item.kv_oracle = <unsigned int>kv_oracle
        item.kv_worker = <unsigned int>(kv_worker if kv_worker >= 0 else 0)
        region._append(&item)
        if kv_state is not None:  # the worker's state after the request left it
            if kv_cells is None:
                kv_cells = self.kv_worker(kv_worker)
            self._publish(kv_cells, kv_state)
        return 0
