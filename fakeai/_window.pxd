"""The compiled window's C-level interface, for the kernels that push into windows (``_region``)."""

cdef struct Sample:
    double timestamp
    double value


cdef struct Totals:
    Py_ssize_t count
    double total
    double minimum
    double maximum


cdef class SlidingWindow:
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

    cdef int _grow(self) except -1
    cdef int _push(self, double timestamp, double value) except -1
    cdef int _expire(self, double now) except -1
    cdef inline void _drop_older_than(self, double horizon) noexcept
    cdef Totals _totals(self, bint copy_values) noexcept nogil
    cdef int _ensure_scratch(self, Py_ssize_t quantile_count) except -1
