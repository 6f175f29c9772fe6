"""The compiled window's C-level interface, for the kernels that push into windows (``_region``)."""

cimport cython

cdef struct Sample:
    double timestamp
    double value


cdef enum:
    TOPS = 16            # the index's first level: the top 4 bits of the order key
    FANOUT = 256         # entries of a node of the value index: the next 8 bits
    PARTIALS = 64        # room for the non-overlapping partials of an exact sum (at most ~40)
    NODE_BLOCK_SHIFT = 2
    NODE_BLOCK = 4       # nodes allocated together (20 kB): a node never moves once made


cdef struct Entry:
    double value          # a leaf's first value since it was last empty
    int link              # a split entry's child node; a leaf's newest sample's slot
    unsigned char split   # split into a child node (0: a leaf)
    unsigned char mixed   # a leaf's values are not all equal to ``value``


cdef struct Node:
    # One level of the value index (see ``_window.pyx``). Entry ``e`` counts the samples
    # whose order key has this node's prefix and ``e`` as the next 8 bits; it is either
    # split further into a child node or a leaf: the slot of its newest sample, from which
    # the slots' ``previous`` links chain back through the older ones. The counts are
    # apart (a read adds them up, level by level); the rest of an entry is in one place
    # (recording and expiry touch it).
    int count[FANOUT]
    Entry entries[FANOUT]


cdef struct Chunk:
    # Slots of the time order (see ``_window.pyx``): ``1 << SlidingWindow._shift`` of them.
    Sample* samples
    int* previous         # per slot: the slot of the previous sample of its leaf
    int next              # the chunk after this one in the circle
    long long sequence    # when the tail last entered it (orders slots by age)


@cython.final
cdef class SlidingWindow:
    # The samples in time order: chunks of ``1 << _shift`` slots, linked in a circle. A slot
    # is ``chunk << _shift | offset``; it never moves, so growing copies nothing.
    cdef Chunk* _chunk                # the chunks, by number
    cdef int _chunks                  # chunks allocated
    cdef int _chunk_room              # room in ``_chunk``
    cdef int _shift
    cdef int _mask
    cdef long long _sequence          # chunks entered so far
    cdef int _head_chunk              # the oldest sample is at (_head_chunk, _head_offset)
    cdef int _head_offset
    cdef int _tail_chunk              # the next one goes to (_tail_chunk, _tail_offset); -1: no chunk yet
    cdef int _tail_offset
    cdef Py_ssize_t _top_count[TOPS]  # the value index: samples under each top entry,
    cdef int _top_node[TOPS]          # and its node (-1 until first used)
    cdef Node** _node_blocks          # the pool of nodes, in blocks of NODE_BLOCK: node ``i`` is
    cdef int _node_block_room         # ``_node_blocks[i >> NODE_BLOCK_SHIFT][i & (NODE_BLOCK - 1)]``
    cdef int _node_count      # nodes ever taken from the pool (live or on the free list)
    cdef int _free_node       # first free node (linked through ``entries[0].link``), or -1
    cdef int _live_nodes
    cdef double _partials[PARTIALS]
    cdef int _partial_count
    cdef Py_ssize_t _size
    cdef Py_ssize_t _max_samples
    cdef double _window_seconds
    cdef double _newest
    cdef unsigned long long _dropped

    cdef double _value_of(self, int slot) noexcept
    cdef int _previous_of(self, int slot) noexcept
    cdef int _node_blocks_made(self) noexcept
    cdef int _add_chunk(self) except -1
    cdef void _enter(self, int chunk) noexcept
    cdef int _tail_slot(self) except -1
    cdef int _push(self, double timestamp, double value) except -1
    cdef int _expire(self, double now) except -1
    cdef void _drop_older_than(self, double horizon) noexcept
    cdef void _pop_oldest(self) noexcept
    cdef int _new_node(self) except -1
    cdef void _append(self, int node, int entry, int slot) noexcept
    cdef int _split(self, int node, int entry, int shift) except -1
    cdef void _merge(self, int node, int entry) noexcept
    cdef void _collect(self, int node, int* slots, int* found) noexcept
