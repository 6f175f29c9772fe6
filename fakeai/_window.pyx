# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: language = c++
"""Compiled sliding window: the fast twin of ``fakeai._window_py``.

``fakeai/_window_py.py`` is the specification; read its docstring for the semantics. This
module keeps the samples in one contiguous ring of ``(timestamp, value)`` pairs that grows by
doubling up to ``max_samples``. Recording is O(1); reads copy the live values into a scratch
buffer and answer quantiles with ``std::nth_element`` (selection, not a full sort), all
without the GIL and without building Python objects.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.math cimport INFINITY, NAN, floor, isfinite
from cython.operator cimport dereference as deref
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy, memmove
from libcpp.unordered_map cimport unordered_map
from libcpp.vector cimport vector

cdef extern from "<algorithm>" namespace "std" nogil:
    void nth_element[Iter](Iter first, Iter nth, Iter last)

DEFAULT_MAX_SAMPLES = 1_000_000

cdef Py_ssize_t _INITIAL_CAPACITY = 64


cdef struct Sample:
    double timestamp
    double value


cdef struct Totals:
    Py_ssize_t count
    double total
    double minimum
    double maximum


# ---------------------------------------------------------------------------------------
# C helpers (no GIL)
# ---------------------------------------------------------------------------------------

cdef inline double _interpolate(double low, double high, double gamma) noexcept nogil:
    # Same arithmetic as the reference (and numpy's _lerp): the branch matters for bit-equality.
    cdef double difference = high - low
    if gamma >= 0.5:
        return high - difference * (1.0 - gamma)
    return low + difference * gamma


cdef inline double _minimum(double* values, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    cdef double smallest = values[start]
    cdef Py_ssize_t i
    for i in range(start + 1, stop):
        if values[i] < smallest:
            smallest = values[i]
    return smallest


cdef Py_ssize_t _BUCKETS = 2048           # histogram size of the bucket selection
cdef Py_ssize_t _BUCKET_THRESHOLD = 4096  # below this many values plain selection is faster


cdef inline unsigned long long _order_key(double value) noexcept nogil:
    """An integer key that orders like the double (finite values; -0.0 and 0.0 alike)."""
    cdef unsigned long long bits
    if value == 0.0:
        return 1ULL << 63
    memcpy(&bits, &value, sizeof(double))
    if bits >> 63:
        return ~bits
    return bits | (1ULL << 63)


cdef inline int _bucket_shift(unsigned long long span) noexcept nogil:
    cdef int shift = 0
    while (span >> shift) >= <unsigned long long>_BUCKETS:
        shift += 1
    return shift


cdef double _select_rank(
    double* values, Py_ssize_t n, Py_ssize_t rank, double* spare, Py_ssize_t* counts
) noexcept nogil:
    """The value of rank ``rank`` of ``values[0:n]``, refining a large segment once more.

    Re-buckets the segment over its own min..max, copies the one bucket holding the rank
    into ``spare`` and selects there; a segment of one repeated value answers at once.
    """
    cdef Py_ssize_t i, b, seen, fill
    cdef double minimum, maximum
    if n < _BUCKET_THRESHOLD:
        nth_element(values, values + rank, values + n)
        return values[rank]
    minimum = values[0]
    maximum = values[0]
    for i in range(1, n):
        if values[i] < minimum:
            minimum = values[i]
        if values[i] > maximum:
            maximum = values[i]
    if minimum == maximum:
        return minimum
    cdef unsigned long long low_key = _order_key(minimum)
    cdef int shift = _bucket_shift(_order_key(maximum) - low_key)
    for b in range(_BUCKETS):
        counts[b] = 0
    for i in range(n):
        counts[(_order_key(values[i]) - low_key) >> shift] += 1
    b = 0
    seen = 0
    while seen + counts[b] <= rank:
        seen += counts[b]
        b += 1
    fill = 0
    for i in range(n):  # branchless: a miss is overwritten by the next value
        spare[fill] = values[i]
        fill += <Py_ssize_t>((_order_key(values[i]) - low_key) >> shift) == b
    nth_element(spare, spare + (rank - seen), spare + fill)
    return spare[rank - seen]


cdef void _select_ranks(
    double* values, Py_ssize_t n, double minimum, double maximum,
    Py_ssize_t* ranks, Py_ssize_t nr, double* out, double* candidates, Py_ssize_t* counts
) noexcept nogil:
    """Fill ``out[i]`` with the value of rank ``ranks[i]`` of ``values``.

    Bucket selection: the order keys between ``minimum`` and ``maximum`` are cut into
    ``_BUCKETS`` equal ranges; one pass counts each bucket, a second copies only the buckets
    that hold a wanted rank into ``candidates``, and the rank is selected inside its bucket.
    ``counts`` holds ``5 * _BUCKETS`` entries: four tables here, one for the refinement.
    """
    cdef unsigned long long low_key = _order_key(minimum)
    cdef int shift = _bucket_shift(_order_key(maximum) - low_key)
    cdef Py_ssize_t i, b, r, seen, segment, fill
    cdef Py_ssize_t* wanted_bucket = counts + _BUCKETS
    cdef Py_ssize_t* first_rank = counts + 2 * _BUCKETS
    cdef Py_ssize_t* offset = counts + 3 * _BUCKETS
    for b in range(_BUCKETS):
        counts[b] = 0
        wanted_bucket[b] = 0
    for i in range(n):
        counts[(_order_key(values[i]) - low_key) >> shift] += 1
    # Walk the cumulative counts to find each wanted rank's bucket. Ranks come in pairs
    # (below, above) of ascending quantiles, so a repeated quantile steps back: restart then.
    b = 0
    seen = 0
    for r in range(nr):
        if ranks[r] < seen:
            b = 0
            seen = 0
        while seen + counts[b] <= ranks[r]:
            seen += counts[b]
            b += 1
        if not wanted_bucket[b]:
            wanted_bucket[b] = 1
            first_rank[b] = seen
        out[r] = <double>b  # the bucket, for now
    fill = 0
    for b in range(_BUCKETS):
        if wanted_bucket[b]:
            offset[b] = fill
            fill += counts[b]
    # ``counts`` becomes the write cursor. Unwanted buckets all write to one slot past the
    # candidates and never advance, so the copy needs no branch on random data.
    for b in range(_BUCKETS):
        counts[b] = offset[b] if wanted_bucket[b] else fill
    for i in range(n):
        b = (_order_key(values[i]) - low_key) >> shift
        candidates[counts[b]] = values[i]
        counts[b] += wanted_bucket[b]
    # ``values`` has been read for the last time: it serves as the spare of the refinement.
    for r in range(nr):
        b = <Py_ssize_t>out[r]
        segment = counts[b] - offset[b]
        out[r] = _select_rank(
            candidates + offset[b], segment, ranks[r] - first_rank[b], values, counts + 4 * _BUCKETS
        )


cdef void _select_quantiles(
    double* values, Py_ssize_t n, double minimum, double maximum,
    double* qs, Py_ssize_t* order, Py_ssize_t nq, double* out,
    double* candidates, Py_ssize_t* counts
) noexcept nogil:
    """Fill ``out[j]`` with quantile ``qs[j]`` of ``values[0:n]``; ``order`` sorts ``qs``."""
    cdef Py_ssize_t j, k, below, above, selected = -1
    cdef double position, gamma, low, high
    cdef Py_ssize_t* ranks = counts + 5 * _BUCKETS
    cdef double* picked = candidates + n + 1  # after the bucket copy's spill slot
    if minimum == maximum:
        for j in range(nq):
            out[j] = minimum
        return
    if n >= _BUCKET_THRESHOLD:
        # Both neighbouring ranks of every quantile, ascending, through the bucket selection.
        for k in range(nq):
            position = <double>(n - 1) * qs[order[k]]
            below = <Py_ssize_t>floor(position)
            ranks[2 * k] = below
            ranks[2 * k + 1] = below + 1 if below + 1 < n else n - 1
        _select_ranks(values, n, minimum, maximum, ranks, 2 * nq, picked, candidates, counts)
        for k in range(nq):
            j = order[k]
            position = <double>(n - 1) * qs[j]
            gamma = position - floor(position)
            out[j] = _interpolate(picked[2 * k], picked[2 * k + 1], gamma)
        return
    for k in range(nq):
        j = order[k]
        position = <double>(n - 1) * qs[j]
        below = <Py_ssize_t>floor(position)
        gamma = position - <double>below
        above = below + 1 if below + 1 < n else n - 1
        if below > selected:
            # Everything before ``selected`` is already at or below it: search only above.
            nth_element(values + selected + 1, values + below, values + n)
            selected = below
        low = values[below]
        high = low if above == below else _minimum(values, below + 1, n)
        out[j] = _interpolate(low, high, gamma)


# ---------------------------------------------------------------------------------------
# The window
# ---------------------------------------------------------------------------------------

cdef class SlidingWindow:
    """Samples of the last ``window_seconds`` with count, sum, extremes and quantiles."""

    cdef Sample* _ring
    cdef double* _scratch
    cdef Py_ssize_t* _counts
    cdef Py_ssize_t _capacity
    cdef Py_ssize_t _head
    cdef Py_ssize_t _size
    cdef Py_ssize_t _max_samples
    cdef double _window_seconds
    cdef double _newest
    cdef unsigned long long _dropped

    def __cinit__(self, double window_seconds, Py_ssize_t max_samples=DEFAULT_MAX_SAMPLES):
        if not isfinite(window_seconds):
            raise ValueError(f"window_seconds must be a finite number, got {window_seconds!r}")
        if window_seconds <= 0.0:
            raise ValueError(f"window_seconds must be positive, got {window_seconds!r}")
        if max_samples < 1:
            raise ValueError(f"max_samples must be at least 1, got {max_samples!r}")
        self._window_seconds = window_seconds
        self._max_samples = max_samples
        self._capacity = min(_INITIAL_CAPACITY, max_samples)
        self._ring = <Sample*>PyMem_Malloc(self._capacity * sizeof(Sample))
        if self._ring == NULL:
            raise MemoryError()
        self._scratch = NULL
        self._counts = NULL
        self._head = 0
        self._size = 0
        self._newest = -INFINITY
        self._dropped = 0

    def __dealloc__(self):
        PyMem_Free(self._ring)
        PyMem_Free(self._scratch)
        PyMem_Free(self._counts)

    @property
    def window_seconds(self):
        return self._window_seconds

    @property
    def max_samples(self):
        return self._max_samples

    @property
    def dropped(self):
        """Samples discarded because the window was full (never because they expired)."""
        return self._dropped

    def __len__(self):
        return self._size

    # -- recording ---------------------------------------------------------------------

    cdef int _grow(self) except -1:
        cdef Py_ssize_t capacity = min(self._capacity * 2, self._max_samples)
        cdef Sample* ring = <Sample*>PyMem_Malloc(capacity * sizeof(Sample))
        if ring == NULL:
            raise MemoryError()
        cdef Py_ssize_t first = min(self._size, self._capacity - self._head)
        memcpy(ring, self._ring + self._head, first * sizeof(Sample))
        memcpy(ring + first, self._ring, (self._size - first) * sizeof(Sample))
        PyMem_Free(self._ring)
        self._ring = ring
        self._capacity = capacity
        self._head = 0
        return 0

    def record(self, double timestamp, double value):
        if not isfinite(timestamp):
            raise ValueError(f"timestamp must be a finite number, got {timestamp!r}")
        if not isfinite(value):
            raise ValueError(f"value must be a finite number, got {value!r}")
        self._push(timestamp, value)

    cdef int _push(self, double timestamp, double value) except -1:
        """``record`` without the checks, for callers that have made them."""
        if timestamp < self._newest:
            timestamp = self._newest
        self._newest = timestamp
        self._drop_older_than(timestamp - self._window_seconds)
        if self._size == self._capacity:
            if self._capacity < self._max_samples:
                self._grow()
            else:
                self._head += 1
                if self._head == self._capacity:
                    self._head = 0
                self._size -= 1
                self._dropped += 1
        cdef Py_ssize_t tail = self._head + self._size
        if tail >= self._capacity:
            tail -= self._capacity
        self._ring[tail].timestamp = timestamp
        self._ring[tail].value = value
        self._size += 1
        return 0

    cdef int _expire(self, double now) except -1:
        if not isfinite(now):
            raise ValueError(f"now must be a finite number, got {now!r}")
        self._drop_older_than(now - self._window_seconds)
        return 0

    cdef inline void _drop_older_than(self, double horizon) noexcept:
        while self._size and self._ring[self._head].timestamp <= horizon:
            self._head += 1
            if self._head == self._capacity:
                self._head = 0
            self._size -= 1

    def expire(self, double now):
        self._expire(now)

    # -- reading -----------------------------------------------------------------------

    cdef Totals _totals(self, bint copy_values) noexcept nogil:
        """Count, sum (oldest first, as the reference adds) and extremes of the live samples."""
        cdef Totals totals
        cdef Py_ssize_t i, slot = self._head
        cdef double value
        totals.count = self._size
        totals.total = 0.0
        totals.minimum = NAN
        totals.maximum = NAN
        if self._size:
            totals.minimum = self._ring[slot].value
            totals.maximum = totals.minimum
        for i in range(self._size):
            value = self._ring[slot].value
            totals.total += value
            if value < totals.minimum:
                totals.minimum = value
            if value > totals.maximum:
                totals.maximum = value
            if copy_values:
                self._scratch[i] = value
            slot += 1
            if slot == self._capacity:
                slot = 0
        return totals

    cdef int _ensure_scratch(self, Py_ssize_t quantile_count) except -1:
        # Live values, then candidates of the bucket selection and their spill slot, then two
        # picks per quantile.
        cdef Py_ssize_t doubles = 2 * self._capacity + 2 * quantile_count + 4
        cdef double* scratch = <double*>PyMem_Realloc(self._scratch, doubles * sizeof(double))
        if scratch == NULL:
            raise MemoryError()
        self._scratch = scratch
        cdef Py_ssize_t* counts = <Py_ssize_t*>PyMem_Realloc(
            self._counts, (5 * _BUCKETS + 2 * quantile_count + 2) * sizeof(Py_ssize_t)
        )
        if counts == NULL:
            raise MemoryError()
        self._counts = counts
        return 0

    def count(self, double now):
        self._expire(now)
        return self._size

    def sum(self, double now):
        self._expire(now)
        return self._totals(False).total

    def min(self, double now):
        self._expire(now)
        return self._totals(False).minimum

    def max(self, double now):
        self._expire(now)
        return self._totals(False).maximum

    def mean(self, double now):
        self._expire(now)
        cdef Totals totals = self._totals(False)
        return totals.total / totals.count if totals.count else NAN

    def rate(self, double now, double started_at):
        if not isfinite(started_at):
            raise ValueError(f"started_at must be a finite number, got {started_at!r}")
        self._expire(now)
        cdef double divisor = min(self._window_seconds, now - started_at)
        return self._size / divisor if divisor > 0.0 else 0.0

    def quantile(self, double now, double q):
        return self.quantiles(now, (q,))[0]

    def quantiles(self, double now, qs):
        return self.summary(now, qs)[4]

    def summary(self, double now, qs):
        """``(count, sum, min, max, quantiles)`` in one pass: what a snapshot needs."""
        cdef Py_ssize_t nq = len(qs), j
        cdef double* wanted = <double*>PyMem_Malloc((nq + 1) * sizeof(double) * 2)
        cdef Py_ssize_t* order = <Py_ssize_t*>PyMem_Malloc((nq + 1) * sizeof(Py_ssize_t))
        cdef double* results
        cdef Totals totals
        if wanted == NULL or order == NULL:
            PyMem_Free(wanted)
            PyMem_Free(order)
            raise MemoryError()
        results = wanted + nq + 1
        try:
            for j, q in enumerate(qs):
                wanted[j] = q
                if not (0.0 <= wanted[j] <= 1.0):
                    raise ValueError(f"quantile must be between 0 and 1, got {q!r}")
            for j, index in enumerate(sorted(range(nq), key=lambda i: wanted[i])):
                order[j] = index
            self._expire(now)
            self._ensure_scratch(nq)
            with nogil:
                totals = self._totals(True)
                if totals.count:
                    _select_quantiles(
                        self._scratch, totals.count, totals.minimum, totals.maximum,
                        wanted, order, nq, results, self._scratch + self._capacity, self._counts,
                    )
                else:
                    for j in range(nq):
                        results[j] = NAN
            return (
                totals.count,
                totals.total,
                totals.minimum,
                totals.maximum,
                tuple([results[j] for j in range(nq)]),
            )
        finally:
            PyMem_Free(wanted)
            PyMem_Free(order)


# ---------------------------------------------------------------------------------------
# Prefix-cache block hashing
# ---------------------------------------------------------------------------------------

cdef uint64_t _HASH_SEED = 0xCBF29CE484222325ULL
cdef uint64_t _HASH_MULTIPLIER = 0x9E3779B97F4A7C15ULL


def block_hashes(const unsigned char[::1] data not None, Py_ssize_t block_bytes):
    """Chained 64-bit hashes of ``data``'s full blocks; see the twin for the definition."""
    if block_bytes < 4 or block_bytes % 4:
        raise ValueError("block_bytes must be a positive multiple of 4")
    cdef Py_ssize_t blocks = data.shape[0] // block_bytes
    cdef Py_ssize_t per_block = block_bytes // 4
    cdef Py_ssize_t block, word_index
    cdef const unsigned char* cursor
    cdef uint32_t word
    cdef uint64_t state = _HASH_SEED
    cdef list hashes = []
    if blocks == 0:
        return hashes
    cursor = &data[0]
    for block in range(blocks):
        for word_index in range(per_block):
            memcpy(&word, cursor, 4)
            cursor += 4
            state = (state ^ word) * _HASH_MULTIPLIER
            state ^= state >> 29
        hashes.append(state)
    return hashes


# ---------------------------------------------------------------------------------------
# The prefix cache of one simulated worker
# ---------------------------------------------------------------------------------------

cdef class PrefixCache:
    """One worker's cache of prefix blocks; see the twin for the semantics.

    Blocks live in slots (parallel vectors); an unordered map finds a block's slot. The
    unpinned blocks form a doubly linked list through their slots (slot 0 is its sentinel),
    least recently released first, so an eviction is O(1).
    """

    cdef unordered_map[uint64_t, Py_ssize_t] _index
    cdef vector[uint64_t] _hash
    cdef vector[Py_ssize_t] _pins
    cdef vector[Py_ssize_t] _prev
    cdef vector[Py_ssize_t] _next
    cdef vector[Py_ssize_t] _spare
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t evictions
    cdef public Py_ssize_t active_requests
    cdef Py_ssize_t _pinned

    def __init__(self, Py_ssize_t capacity_blocks):
        if capacity_blocks < 1:
            raise ValueError("capacity_blocks must be at least 1")
        self.capacity = capacity_blocks
        self._hash.push_back(0)  # slot 0: the sentinel of the unpinned list
        self._pins.push_back(0)
        self._prev.push_back(0)
        self._next.push_back(0)

    def __len__(self):
        return self._index.size()

    def __contains__(self, block):
        return self._index.count(<uint64_t>block) != 0

    def pins(self, block):
        cdef unordered_map[uint64_t, Py_ssize_t].iterator found = self._index.find(<uint64_t>block)
        if found == self._index.end():
            return 0
        return self._pins[deref(found).second]

    def pinned_blocks(self):
        return self._pinned

    def state(self):
        """``(blocks held, capacity in blocks, running requests, evictions so far)``."""
        return <Py_ssize_t>self._index.size(), self.capacity, self.active_requests, self.evictions

    cdef inline void _unlink(self, Py_ssize_t slot) noexcept:
        cdef Py_ssize_t before = self._prev[slot], after = self._next[slot]
        self._next[before] = after
        self._prev[after] = before

    cdef inline void _append(self, Py_ssize_t slot) noexcept:
        cdef Py_ssize_t last = self._prev[0]
        self._next[last] = slot
        self._prev[slot] = last
        self._next[slot] = 0
        self._prev[0] = slot

    cdef Py_ssize_t _cached_prefix(self, list hashes) except -1:
        cdef Py_ssize_t count = 0
        cdef object block
        for block in hashes:
            if self._index.find(<uint64_t>block) == self._index.end():
                break
            count += 1
        return count

    def cached_prefix(self, hashes):
        return self._cached_prefix(hashes if type(hashes) is list else list(hashes))

    def acquire(self, hashes):
        cdef list blocks = hashes if type(hashes) is list else list(hashes)
        cdef Py_ssize_t cached = self._cached_prefix(blocks)
        cdef list pinned = []
        cdef object block
        cdef uint64_t key
        cdef Py_ssize_t slot, victim
        cdef unordered_map[uint64_t, Py_ssize_t].iterator found
        for block in blocks:
            key = <uint64_t>block
            found = self._index.find(key)
            if found == self._index.end():
                if <Py_ssize_t>self._index.size() >= self.capacity:
                    victim = self._next[0]
                    if victim == 0:
                        break  # every block is in use: this one and the rest stay uncached
                    self._unlink(victim)
                    self._index.erase(self._hash[victim])
                    self._spare.push_back(victim)
                    self.evictions += 1
                if self._spare.empty():
                    slot = self._hash.size()
                    self._hash.push_back(key)
                    self._pins.push_back(1)
                    self._prev.push_back(0)
                    self._next.push_back(0)
                else:
                    slot = self._spare.back()
                    self._spare.pop_back()
                    self._hash[slot] = key
                    self._pins[slot] = 1
                self._index[key] = slot
                self._pinned += 1
            else:
                slot = deref(found).second
                if self._pins[slot] == 0:
                    self._unlink(slot)
                    self._pinned += 1
                self._pins[slot] += 1
            pinned.append(block)
        self.active_requests += 1
        return cached, pinned

    def release(self, pinned):
        cdef list blocks = pinned if type(pinned) is list else list(pinned)
        cdef Py_ssize_t index, slot
        cdef unordered_map[uint64_t, Py_ssize_t].iterator found
        for index in range(len(blocks) - 1, -1, -1):
            found = self._index.find(<uint64_t>blocks[index])
            if found == self._index.end():
                continue
            slot = deref(found).second
            if self._pins[slot] == 0:
                continue  # not pinned (cannot happen for what acquire returned)
            self._pins[slot] -= 1
            if self._pins[slot] == 0:
                self._append(slot)
                self._pinned -= 1
        self.active_requests -= 1


# ---------------------------------------------------------------------------------------
# Union of windows
# ---------------------------------------------------------------------------------------

def union(windows, double now):
    """A new window holding the live samples at ``now`` of every one of ``windows``; see the twin."""
    cdef list parts = list(windows)
    cdef Py_ssize_t count = len(parts), total = 0, index, best
    cdef SlidingWindow window, merged
    cdef double seconds, timestamp, best_timestamp
    cdef Sample* sample
    if count == 0:
        raise ValueError("union of no windows")
    seconds = (<SlidingWindow?>parts[0])._window_seconds
    for index in range(count):
        window = <SlidingWindow?>parts[index]
        if window._window_seconds != seconds:
            raise ValueError("union of windows of different lengths")
        window._expire(now)
        total += window._size
    merged = SlidingWindow(seconds, max(1, total))
    cdef vector[Py_ssize_t] cursors = vector[Py_ssize_t](count, 0)
    cdef Py_ssize_t remaining = total, slot
    while remaining:
        best = -1
        best_timestamp = 0.0
        for index in range(count):
            window = <SlidingWindow>parts[index]
            if cursors[index] == window._size:
                continue
            slot = window._head + cursors[index]
            if slot >= window._capacity:
                slot -= window._capacity
            timestamp = window._ring[slot].timestamp
            if best < 0 or timestamp < best_timestamp:
                best, best_timestamp = index, timestamp
        window = <SlidingWindow>parts[best]
        slot = window._head + cursors[best]
        if slot >= window._capacity:
            slot -= window._capacity
        sample = &window._ring[slot]
        merged._push(sample.timestamp, sample.value)
        cursors[best] += 1
        remaining -= 1
    return merged


# ---------------------------------------------------------------------------------------
# The shared-memory metrics region (see the twin for the layout and the protocol)
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

from fakeai._window_py import _process_alive
from fakeai._window_py import (
    HEADER_BYTES, HEADER_FIELDS, KEY_BYTES, KEY_NAME_BYTES, RECORD, REGION_MAGIC, REGION_VERSION,
    STREAM_COMPLETED, STREAM_PLAIN, region_bytes,
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


cdef class Region:
    """A metrics region over a writable buffer; see ``fakeai._window_py.Region``."""

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

    def observe(self, Py_ssize_t block, bounds, double value):
        cdef Py_ssize_t size = len(bounds), bucket = size, index
        for index in range(size):
            if value <= bounds[index]:
                bucket = index
                break
        self._cells[block + bucket] += 1.0
        self._cells[block + size + 1] += value
        self._cells[block + size + 2] += 1.0

    cdef inline void _observe(self, Py_ssize_t block, const double* bounds, Py_ssize_t size, double value) noexcept:
        cdef Py_ssize_t low = 0, high = size, middle
        while low < high:
            middle = (low + high) >> 1
            if bounds[middle] < value:
                low = middle + 1
            else:
                high = middle
        self._cells[block + low] += 1.0
        self._cells[block + size + 1] += value
        self._cells[block + size + 2] += 1.0

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

    def keys(self):
        cdef Py_ssize_t index, used = fakeai_load(&self._header[_KEYS_USED])
        cdef unsigned char* entry
        result = []
        for index in range(used):
            entry = self._keys + index * _KEY_BYTES
            name = (<bytes>(<char*>entry + 8)[:_KEY_NAME_BYTES]).rstrip(b"\0").decode()
            result.append((name, (<unsigned int*>entry)[0], (<unsigned int*>entry)[1]))
        return result

    def cells(self):
        cdef Py_ssize_t count = self.cell_capacity, used = 0, attempts = 0, index
        cdef double* copy = <double*>PyMem_Malloc(max(count, 1) * sizeof(double))
        cdef unsigned long long before
        if copy == NULL:
            raise MemoryError()
        try:
            while True:
                before = fakeai_load(&self._header[_SEQ])
                if not before & 1:
                    used = fakeai_load(&self._header[_CELLS_USED])
                    memcpy(copy, self._cells, used * sizeof(double))
                    fakeai_fence()
                    if fakeai_load(&self._header[_SEQ]) == before:
                        break
                attempts += 1
                if attempts % 1024 == 0 and not _process_alive(self.pid):
                    used = fakeai_load(&self._header[_CELLS_USED])
                    memcpy(copy, self._cells, used * sizeof(double))  # died mid-update: as it is
                    break
            return [copy[index] for index in range(used)]
        finally:
            PyMem_Free(copy)

    def seq(self):
        return fakeai_load(&self._header[_SEQ])

    def journal_written(self):
        return fakeai_load(&self._header[_JOURNAL_WRITTEN])

    def dropped(self):
        return self._header[_DROPPED]

    cdef Record* _copy_since(self, unsigned long long start, unsigned long long* first_out,
                             unsigned long long* count_out, unsigned long long* end_out) except NULL:
        """Copy the records from index ``start`` on that the ring still holds; keep only those
        the writer cannot have overwritten while they were copied (``*first_out`` is the index
        of the first kept, ``*count_out`` how many). The caller frees the copy."""
        cdef unsigned long long end = fakeai_load(&self._header[_JOURNAL_WRITTEN])
        cdef unsigned long long capacity = self.journal_capacity
        cdef unsigned long long first = max(start, end - capacity if end > capacity else 0)
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

    def records(self, unsigned long long start):
        cdef unsigned long long first, count, end, index
        cdef Record* copy = self._copy_since(start, &first, &count, &end)
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

    def replay(self, unsigned long long start, dict endpoints, tuple streaming, tuple kv):
        """Journal records from index ``start`` into windows (see the twin's ``replay``);
        ``(the next index to read, records lost)``."""
        cdef unsigned long long first, count, end
        cdef Record* copy = self._copy_since(start, &first, &count, &end)
        try:
            self._replay(copy, count, endpoints, streaming[0], streaming[1], streaming[2], kv[0], kv[1], kv[2], kv[3])
            return end, first - start
        finally:
            PyMem_Free(copy)


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
    """One endpoint's cells; see ``fakeai._window_py.EndpointCells``."""

    cdef object _writer
    cdef readonly str name
    cdef readonly Py_ssize_t requests, id, prompt, completion
    cdef readonly Py_ssize_t duration_histogram, prompt_histogram, completion_histogram
    cdef readonly dict errors
    cdef readonly bint lossy

    def __init__(self, writer, str name):
        self._writer = writer
        self.name = name
        cell = writer.cell
        self.requests = cell(f"c|requests|{name}")
        self.id = self.requests
        self.prompt = cell(f"c|prompt_tokens|{name}")
        self.completion = cell(f"c|completion_tokens|{name}")
        self.duration_histogram = cell(f"h|duration|{name}", len(writer.duration_bounds) + 3)
        self.prompt_histogram = cell(f"h|prompt_tokens|{name}", len(writer.token_bounds) + 3)
        self.completion_histogram = cell(f"h|completion_tokens|{name}", len(writer.token_bounds) + 3)
        self.errors = {}
        self.lossy = writer.spill in (self.requests, self.prompt, self.completion, self.duration_histogram,
                                      self.prompt_histogram, self.completion_histogram)

    def error_cell(self, int status):
        cell = self.errors.get(status)
        if cell is None:
            cell = self._writer.cell(f"c|errors|{self.name}|{status}")
            if cell != self._writer.spill:  # no room: tried again (and counted) next time
                self.errors[status] = cell
        return cell


cdef class ModelCells:
    """One model's cells; see ``fakeai._window_py.ModelCells``."""

    cdef object _writer
    cdef readonly str name
    cdef readonly Py_ssize_t running, prompt, generation, ttft, itl, e2e, prompt_histogram, generation_histogram
    cdef readonly dict success
    cdef readonly bint lossy

    def __init__(self, writer, str name):
        self._writer = writer
        self.name = name
        cell = writer.cell
        duration, tokens = len(writer.duration_bounds) + 3, len(writer.token_bounds) + 3
        self.running = cell(f"g|running|{name}")
        self.prompt = cell(f"c|model_prompt_tokens|{name}")
        self.generation = cell(f"c|model_generation_tokens|{name}")
        self.ttft = cell(f"h|model_ttft|{name}", duration)
        self.itl = cell(f"h|model_itl|{name}", len(writer.inter_token_bounds) + 3)
        self.e2e = cell(f"h|model_e2e|{name}", duration)
        self.prompt_histogram = cell(f"h|model_prompt_tokens|{name}", tokens)
        self.generation_histogram = cell(f"h|model_generation_tokens|{name}", tokens)
        self.success = {}
        self.lossy = writer.spill in (self.running, self.prompt, self.generation, self.ttft, self.itl, self.e2e,
                                      self.prompt_histogram, self.generation_histogram)

    def success_cell(self, str reason):
        cell = self.success.get(reason)
        if cell is None:
            cell = self._writer.cell(f"c|success|{self.name}|{reason}")
            if cell != self._writer.spill:
                self.success[reason] = cell
        return cell


cdef class MetricsWriter:
    """What one process records into its region; see ``fakeai._window_py.MetricsWriter``."""

    cdef readonly Region region
    cdef _Bounds _duration, _tokens, _inter_token
    cdef dict _endpoints, _models, _kv, _evictions_seen
    cdef readonly Py_ssize_t active_streams, completed_streams, failed_streams
    cdef readonly Py_ssize_t tokens_per_second_sum, tokens_per_second_count, stream_ttft, stream_itl
    cdef readonly Py_ssize_t kv_hit_requests, kv_oracle, spill, unrecorded

    def __init__(self, Region region, duration_bounds, token_bounds, inter_token_bounds):
        self.region = region
        self._duration = _Bounds(duration_bounds)
        self._tokens = _Bounds(token_bounds)
        self._inter_token = _Bounds(inter_token_bounds)
        self._endpoints = {}
        self._models = {}
        self._kv = {}
        self._evictions_seen = {}
        self.spill = region.key("s|spill", max(self._duration.size, self._tokens.size, self._inter_token.size) + 3)
        self.unrecorded = region.key("c|unrecorded_figures")
        self.active_streams = region.key("g|active_streams")
        self.completed_streams = region.key("c|streams|completed")
        self.failed_streams = region.key("c|streams|failed")
        self.tokens_per_second_sum = region.key("c|stream_tokens_per_second_sum")
        self.tokens_per_second_count = region.key("c|stream_tokens_per_second_count")
        self.stream_ttft = region.key("h|stream_ttft", self._duration.size + 3)
        self.stream_itl = region.key("h|stream_itl", self._inter_token.size + 3)
        self.kv_hit_requests = region.key("c|kv_hit_requests")
        self.kv_oracle = region.key("c|kv_oracle_cached_tokens")

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

    def kv_worker(self, int worker):
        cells = self._kv.get(worker)
        if cells is None:
            cell = self.cell
            cells = tuple(
                cell(f"{kind}|kv_{name}|{worker}") for kind, name in (
                    ("c", "routed"), ("c", "prompt_tokens"), ("c", "cached_tokens"),
                    ("g", "blocks"), ("g", "capacity_blocks"), ("g", "active_requests"), ("c", "evictions")))
            if self.spill not in cells:
                self._kv[worker] = cells
        return cells

    def started(self, ModelCells model):
        self.region._cells[model.running] += 1.0

    def start(self, str model):
        """``started(model(name))`` in one call; returns the model's cells."""
        cdef ModelCells cells = self._models.get(model)
        if cells is None:
            cells = self.model(model)
        self.region._cells[cells.running] += 1.0
        return cells

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
        cdef tuple cells = self._kv.get(worker)
        if cells is None:
            cells = self.kv_worker(worker)
        self._kv_state(cells, worker, blocks, capacity, active, evictions)

    cdef int _kv_state(self, tuple cells, int worker, long long blocks, long long capacity, long long active,
                       long long evictions) except -1:
        cdef double* values = self.region._cells
        values[<Py_ssize_t>cells[3]] = blocks
        values[<Py_ssize_t>cells[4]] = capacity
        values[<Py_ssize_t>cells[5]] = active
        cdef long long seen = self._evictions_seen.get(worker, 0)
        if evictions != seen:
            values[<Py_ssize_t>cells[6]] += evictions - seen
            self._evictions_seen[worker] = evictions
        return 0

    cdef int _publish(self, tuple cells, int worker, tuple state) except -1:
        cdef long long blocks, capacity, active, evictions
        blocks, capacity, active, evictions = state
        return self._kv_state(cells, worker, blocks, capacity, active, evictions)

    def publish(self, int worker, tuple state not None):
        """``kv_state`` with the four figures as one tuple; see the twin's ``publish``."""
        cdef tuple cells = self._kv.get(worker)
        if cells is None:
            cells = self.kv_worker(worker)
        self._publish(cells, worker, state)

    def record(self, double now, double duration, int status, long long prompt_tokens, long long completion_tokens,
               EndpointCells endpoint not None, ModelCells model=None, double ttft=NAN, double itl=NAN,
               finish_reason=None, int stream=0, int kv_worker=-1, long long kv_prompt=0, long long kv_cached=0,
               long long kv_oracle=0, tuple kv_state=None):
        if prompt_tokens < 0:
            raise ValueError(f"prompt_tokens must not be negative, got {prompt_tokens!r}")
        if completion_tokens < 0:
            raise ValueError(f"completion_tokens must not be negative, got {completion_tokens!r}")
        if not isfinite(now):
            raise ValueError(f"now must be a finite number, got {now!r}")
        if not isfinite(duration):
            raise ValueError(f"duration must be a finite number, got {duration!r}")
        # cells a first-time status, reason or KV worker needs are allocated before the update
        cdef Py_ssize_t error_cell = endpoint.error_cell(status) if status >= 400 else -1
        cdef Py_ssize_t success_cell = -1
        if model is not None and finish_reason is not None:
            success_cell = model.success_cell(finish_reason)
        cdef tuple kv_cells = self.kv_worker(kv_worker) if kv_worker >= 0 else None
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
            cells[model.prompt] += prompt_tokens
            cells[model.generation] += completion_tokens
            if success_cell >= 0:
                cells[success_cell] += 1.0
                region._observe(model.e2e, self._duration.values, self._duration.size, duration)
                region._observe(model.prompt_histogram, self._tokens.values, self._tokens.size, prompt_tokens)
                region._observe(model.generation_histogram, self._tokens.values, self._tokens.size,
                                completion_tokens)
                if ttft == ttft:
                    region._observe(model.ttft, self._duration.values, self._duration.size, ttft)
                if itl == itl:
                    region._observe(model.itl, self._inter_token.values, self._inter_token.size, itl)
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
            cells[<Py_ssize_t>kv_cells[0]] += 1.0
            cells[<Py_ssize_t>kv_cells[1]] += kv_prompt
            cells[<Py_ssize_t>kv_cells[2]] += kv_cached
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
            self._publish(kv_cells, kv_worker, kv_state)
