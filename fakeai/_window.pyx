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
from libc.string cimport memcpy
from libcpp.vector cimport vector

cdef extern from "<algorithm>" namespace "std" nogil:
    void nth_element[Iter](Iter first, Iter nth, Iter last)

DEFAULT_MAX_SAMPLES = 1_000_000

cdef Py_ssize_t _INITIAL_CAPACITY = 64

# ``Sample``, ``Totals`` and the fields of ``SlidingWindow`` are declared in ``_window.pxd``.


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

    # Fields: see ``_window.pxd``.

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
