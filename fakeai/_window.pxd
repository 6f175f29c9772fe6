"""The compiled window's C-level interface, for the kernels that push into windows (``_region``)."""

cimport cython

cdef struct Sample:
    double timestamp
    double value


cdef enum:
    BITS = 4             # bits of the order key a node of the value index tells apart
    FANOUT = 16          # its entries: 2 ** BITS
    PARTIALS = 64        # room for the non-overlapping partials of an exact sum (at most ~40)


cdef struct Node:
    # One level of the value index (see ``_window.pyx``). Entry ``e`` counts the samples
    # whose order key has this node's prefix and ``e`` as the next BITS bits; it is either
    # split further (``child`` >= 0) or a leaf: its newest sample's ring slot (``tail``),
    # from which ``SlidingWindow._previous`` chains back through the older ones.
    int count[FANOUT]
    int child[FANOUT]
    int tail[FANOUT]
    double value[FANOUT]         # a leaf's first value since it was last empty
    unsigned char mixed[FANOUT]  # a leaf's values are not all equal to ``value``


@cython.final
cdef class SlidingWindow:
    cdef Sample* _ring
    cdef int* _previous       # per ring slot: the slot of the previous sample of its leaf
    cdef Node* _nodes         # the value index: node 0 is the root; a pool grown by doubling
    cdef int _node_capacity
    cdef int _node_count      # nodes ever taken from the pool (live or on the free list)
    cdef int _free_node       # first free node (linked through ``child[0]``), or -1
    cdef int _live_nodes
    cdef double _partials[PARTIALS]
    cdef int _partial_count
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
    cdef void _drop_older_than(self, double horizon) noexcept
    cdef void _pop_oldest(self) noexcept
    cdef int _new_node(self) except -1
    cdef void _append(self, int node, int entry, int slot) noexcept
    cdef int _split(self, int node, int entry, int shift) except -1
    cdef void _merge(self, int node, int entry) noexcept
    cdef void _collect(self, int node, int* slots, int* found) noexcept
    cdef void _remap(self, int node, Py_ssize_t old_head, Py_ssize_t old_capacity) noexcept
