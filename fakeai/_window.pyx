# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: language = c++
"""Compiled sliding window: the fast twin of ``fakeai._window_py``.

``fakeai/_window_py.py`` is the specification; read its docstring for the semantics. Reads
(count, sum, extremes, exact quantiles) cost the same whatever the number of samples in the
window; recording and expiry cost a few counter updates along one path of an index.

* **Time order.** The samples live in chunks of ``(timestamp, value)`` pairs (up to 1024
  a chunk, fewer for a small ``max_samples``), linked in a circle that the newest samples
  fill and expiry empties, first in first out. A sample's *slot* (its chunk and offset)
  never moves: when the next chunk still holds live samples, a new chunk is spliced in
  before it, so the window grows without copying anything (a doubling ring's copy held a
  read replaying a journal for milliseconds at 1e5 samples). A window holds at most
  ``max_samples`` samples in at most ``max_samples / chunk + 2`` chunks, allocated as they
  are first needed.
* **Value order.** The same samples are indexed in a trie over the 64-bit order key of the
  value (``_order_key``: integers that order like the doubles): a top level of 16 entries
  (the key's top 4 bits: sign and top of the exponent), then nodes of 256 entries, 8 bits
  a level (the rest of the exponent, i.e. the binade, then the mantissa; the last level
  overlaps the one above so that it ends at bit 0). Each entry counts the samples under it
  and is either split into a child node or a *leaf*: the slot of its newest sample, each
  slot holding the slot of the previous sample of its leaf (``Chunk.previous``, one ``int``
  per slot, written with the sample). As expiry is in time order, a leaf's live samples
  are always the newest ``count`` of its chain, so expiry only decrements counts. A leaf
  whose values are not all equal splits when it holds more than ``SPLIT`` samples; a split
  entry that falls to ``MERGE`` samples or fewer becomes one leaf again. So a leaf holds
  either at most ``SPLIT`` samples or any number of one repeated value (a token count, a
  constant latency), which answers at once. The cost of a record or an expiry is the path:
  a few nodes, each a possible cache miss once the index outgrows the cache (tens of ns at
  1e5 samples, a few hundred at 1e6 spread values; see docs/monitoring-internals.md).
* **Reads.** The value of rank ``k`` descends the trie: at each node the entry whose
  cumulative count passes ``k`` (256 additions), then within one leaf (at most ``SPLIT``
  values, sorted). Several windows are read together the same way, adding their counts
  entry by entry (``summarize``): no window is copied or merged.
* **Sum.** Shewchuk's non-overlapping partials, added to on record and subtracted from on
  expiry, rounded like ``math.fsum``: exact and O(1) to read.
"""

cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.math cimport INFINITY, NAN, fabs, floor, isfinite
from libc.string cimport memcpy, memset
from libcpp.algorithm cimport sort
from libcpp.pair cimport pair
from libcpp.vector cimport vector

DEFAULT_MAX_SAMPLES = 1_000_000
MAX_SAMPLES_LIMIT = 2**31 - 2048

cdef int _LARGEST_CHUNK_SHIFT = 10  # 1024 slots: 20 KB with their links
cdef int _SMALLEST_CHUNK_SHIFT = 3

cdef enum:
    SPLIT = 256  # a leaf of unequal values holding more samples than this is split
    FEW_RUNS = 32  # a selection sorts the runs it has left once this few
    MERGE = 64   # a split entry holding this many samples or fewer becomes a leaf again
    TOP_SHIFT = 60    # the top level tells apart the top 4 bits of the order key (sign, 3 of exponent)
    FIRST_SHIFT = 52  # its nodes the next 8 (the rest of the exponent: the binade), then 8 bits a level


cdef inline int _below(int shift) noexcept nogil:
    """The shift of the level under one at ``shift``: 8 bits on, the last one overlapping."""
    return shift - 8 if shift > 8 else 0

# ``Sample``, ``Entry``, ``Node``, ``TOPS``, ``FANOUT``, ``PARTIALS`` and the fields of ``SlidingWindow`` are
# declared in ``_window.pxd``.


cdef inline Node* _node_at(Node** blocks, int node) noexcept nogil:
    return &blocks[node >> NODE_BLOCK_SHIFT][node & (NODE_BLOCK - 1)]


cdef inline Sample* _sample_at(Chunk* chunks, int shift, int mask, int slot) noexcept nogil:
    return &chunks[slot >> shift].samples[slot & mask]


cdef inline int* _previous_at(Chunk* chunks, int shift, int mask, int slot) noexcept nogil:
    return &chunks[slot >> shift].previous[slot & mask]


# ---------------------------------------------------------------------------------------
# C helpers (no GIL)
# ---------------------------------------------------------------------------------------

cdef inline double _interpolate(double low, double high, double gamma) noexcept nogil:
    # Same arithmetic as the reference (and numpy's _lerp): the branch matters for bit-equality.
    cdef double difference = high - low
    if gamma >= 0.5:
        return high - difference * (1.0 - gamma)
    return low + difference * gamma


cdef inline unsigned long long _order_key(double value) noexcept nogil:
    """An integer key that orders like the double (finite values; -0.0 and 0.0 alike)."""
    cdef unsigned long long bits
    if value == 0.0:
        return 1ULL << 63
    memcpy(&bits, &value, sizeof(double))
    if bits >> 63:
        return ~bits
    return bits | (1ULL << 63)


cdef inline void _add_exactly(double* partials, int* count, double x) noexcept nogil:
    """Add ``x`` to the exact sum held by ``partials`` (Shewchuk's step: ``math.fsum``'s inner
    loop). The partials stay non-overlapping, smallest magnitude first, and add up exactly to
    every value added; subtracting is adding ``-x``."""
    cdef int i = 0, j
    cdef double y, hi, lo, swap
    for j in range(count[0]):
        y = partials[j]
        if fabs(x) < fabs(y):
            swap = x
            x = y
            y = swap
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            partials[i] = lo
            i += 1
        x = hi
    if i >= PARTIALS:  # unreachable with finite sums (partials do not overlap: at most ~40)
        for j in range(1, i):
            partials[0] += partials[j]
        i = 1
    partials[i] = x
    count[0] = i + 1


cdef double _rounded_sum(double* partials, int n) noexcept nogil:
    """The correctly rounded value of non-overlapping partials: ``math.fsum``'s last step."""
    cdef double hi = 0.0, lo = 0.0, x, y, yr
    if n > 0:
        n -= 1
        hi = partials[n]
        while n > 0:
            x = hi
            n -= 1
            y = partials[n]
            hi = x + y
            yr = hi - x
            lo = y - yr
            if lo != 0.0:
                break
        # Round half to even across the partials, as math.fsum does.
        if n > 0 and ((lo < 0.0 and partials[n - 1] < 0.0) or (lo > 0.0 and partials[n - 1] > 0.0)):
            y = lo * 2.0
            x = hi + y
            yr = x - hi
            if y == yr:
                hi = x
    return hi


cdef struct View:
    # One window as a read sees it.
    Node** nodes
    Chunk* chunks
    int shift
    int mask
    Py_ssize_t* top_count
    int* top_node
    Py_ssize_t size


cdef double _select(View* views, Py_ssize_t count, Py_ssize_t rank, int* cursors,
                    vector[pair[double, Py_ssize_t]]& runs, vector[unsigned long long]& keys) noexcept nogil:
    """The value of rank ``rank`` among the samples of ``views`` together.

    Descends the windows' tries side by side: ``cursors[w]`` is window ``w``'s node at the
    current prefix, or -1 once its samples there sit in a leaf (then they are among ``runs``:
    ``(value, how many)`` with their order keys in ``keys``) or there are none. At each level
    the counts of the 256 entries are added over every window and run; the entry holding the
    rank is kept. When no window has a node left, the runs go on being narrowed by their keys
    while more than ``FEW_RUNS`` are left; then the few left are sorted.
    """
    cdef Py_ssize_t table[FANOUT]
    cdef Py_ssize_t w, i, kept
    cdef int shift = FIRST_SHIFT, entry, node, slot, live = 0, bottom = 0
    cdef double value
    cdef Node* n
    runs.clear()
    keys.clear()
    memset(table, 0, sizeof(table))
    for w in range(count):
        for i in range(TOPS):
            table[i] += views[w].top_count[i]
    entry = 0
    while rank >= table[entry]:
        rank -= table[entry]
        entry += 1
    for w in range(count):
        cursors[w] = views[w].top_node[entry] if views[w].top_count[entry] else -1
        live += cursors[w] >= 0
    # Down a level at a time while a window has a node here -- and then, over the runs alone,
    # while many are left (leaves of several windows that ended together): narrowing them by
    # their keys' lower bits is cheaper than sorting them all (up to SPLIT a window).
    while live or (not bottom and <Py_ssize_t>runs.size() > FEW_RUNS):
        memset(table, 0, sizeof(table))
        for w in range(count):
            if cursors[w] >= 0:
                n = _node_at(views[w].nodes, cursors[w])
                for i in range(FANOUT):
                    table[i] += n.count[i]
        for i in range(<Py_ssize_t>runs.size()):
            table[(keys[i] >> shift) & (FANOUT - 1)] += runs[i].second
        entry = 0
        while rank >= table[entry]:
            rank -= table[entry]
            entry += 1
        kept = 0
        for i in range(<Py_ssize_t>runs.size()):
            if <int>((keys[i] >> shift) & (FANOUT - 1)) == entry:
                runs[kept] = runs[i]
                keys[kept] = keys[i]
                kept += 1
        runs.resize(kept)
        keys.resize(kept)
        for w in range(count):
            if cursors[w] < 0:
                continue
            n = _node_at(views[w].nodes, cursors[w])
            if n.count[entry] and n.entries[entry].split:
                cursors[w] = n.entries[entry].link
                continue
            cursors[w] = -1
            live -= 1
            if n.count[entry] == 0:
                continue
            if not n.entries[entry].mixed:
                runs.push_back(pair[double, Py_ssize_t](n.entries[entry].value, n.count[entry]))
                keys.push_back(_order_key(n.entries[entry].value))
                continue
            slot = n.entries[entry].link
            for i in range(n.count[entry]):
                value = _sample_at(views[w].chunks, views[w].shift, views[w].mask, slot).value
                runs.push_back(pair[double, Py_ssize_t](value, 1))
                keys.push_back(_order_key(value))
                slot = _previous_at(views[w].chunks, views[w].shift, views[w].mask, slot)[0]
        if shift == 0:
            bottom = 1
        shift = _below(shift)
    if runs.size() > 1:
        sort(runs.begin(), runs.end())
    i = 0
    while rank >= runs[i].second:
        rank -= runs[i].second
        i += 1
    return runs[i].first


# ---------------------------------------------------------------------------------------
# The window
# ---------------------------------------------------------------------------------------

@cython.final
cdef class SlidingWindow:
    """Samples of the last ``window_seconds`` with count, sum, extremes and quantiles."""

    # Fields: see ``_window.pxd``.

    def __cinit__(self, double window_seconds, Py_ssize_t max_samples=DEFAULT_MAX_SAMPLES):
        cdef int i, shift = _SMALLEST_CHUNK_SHIFT
        if not isfinite(window_seconds):
            raise ValueError(f"window_seconds must be a finite number, got {window_seconds!r}")
        if window_seconds <= 0.0:
            raise ValueError(f"window_seconds must be positive, got {window_seconds!r}")
        if not 1 <= max_samples < MAX_SAMPLES_LIMIT:
            raise ValueError(f"max_samples must be at least 1 and below 2**31 - 2048, got {max_samples!r}")
        self._window_seconds = window_seconds
        self._max_samples = max_samples
        # A chunk of about a sixteenth of the largest window, within 8 to 1024 slots: a small
        # window's chunks stay small, a large one's few.
        while shift < _LARGEST_CHUNK_SHIFT and (<Py_ssize_t>1 << (shift + 4)) < max_samples:
            shift += 1
        self._shift = shift
        self._mask = (1 << shift) - 1
        self._chunk = NULL
        self._chunks = 0
        self._chunk_room = 0
        self._sequence = 0
        self._head_chunk = -1
        self._head_offset = 0
        self._tail_chunk = -1
        self._tail_offset = 0
        self._node_blocks = NULL
        self._node_block_room = 0
        self._node_count = 0
        self._free_node = -1
        self._live_nodes = 0
        for i in range(TOPS):
            self._top_count[i] = 0
            self._top_node[i] = -1
        self._partial_count = 0
        self._size = 0
        self._newest = -INFINITY
        self._dropped = 0

    def __dealloc__(self):
        cdef int chunk, block
        for chunk in range(self._chunks):
            PyMem_Free(self._chunk[chunk].samples)
            PyMem_Free(self._chunk[chunk].previous)
        PyMem_Free(self._chunk)
        for block in range(self._node_blocks_made()):
            PyMem_Free(self._node_blocks[block])
        PyMem_Free(self._node_blocks)

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

    @property
    def memory_bytes(self):
        """Bytes held: the chunks (a sample and a link per slot) and the index's nodes."""
        return ((<Py_ssize_t>self._chunks << self._shift) * (sizeof(Sample) + sizeof(int))
                + (<Py_ssize_t>self._node_blocks_made() << NODE_BLOCK_SHIFT) * sizeof(Node))

    @property
    def index_nodes(self):
        """Nodes of the value index in use (the root included)."""
        return self._live_nodes

    def __len__(self):
        return self._size

    # -- the value index -------------------------------------------------------------

    cdef int _node_blocks_made(self) noexcept:
        return (self._node_count + NODE_BLOCK - 1) >> NODE_BLOCK_SHIFT

    cdef int _new_node(self) except -1:
        """A node from the free list, or a new one (in a new block of ``NODE_BLOCK`` when the
        last is full: nodes never move, so growing copies nothing)."""
        cdef int node, block, room
        cdef void* grown
        if self._free_node >= 0:
            node = self._free_node
            self._free_node = _node_at(self._node_blocks, node).entries[0].link
        else:
            node = self._node_count
            if node & (NODE_BLOCK - 1) == 0:
                block = node >> NODE_BLOCK_SHIFT
                if block == self._node_block_room:
                    room = max(4, 2 * self._node_block_room)
                    grown = PyMem_Realloc(self._node_blocks, room * sizeof(Node*))
                    if grown == NULL:
                        raise MemoryError()
                    self._node_blocks = <Node**>grown
                    self._node_block_room = room
                self._node_blocks[block] = <Node*>PyMem_Malloc(NODE_BLOCK * sizeof(Node))
                if self._node_blocks[block] == NULL:
                    raise MemoryError()
            self._node_count += 1
        memset(_node_at(self._node_blocks, node), 0, sizeof(Node))  # every entry an empty leaf
        self._live_nodes += 1
        return node

    cdef void _append(self, int node, int entry, int slot) noexcept:
        """Add slot ``slot`` to the leaf ``entry`` of ``node`` as its newest sample."""
        cdef Node* n = _node_at(self._node_blocks, node)
        cdef double value = _sample_at(self._chunk, self._shift, self._mask, slot).value
        cdef int* previous = _previous_at(self._chunk, self._shift, self._mask, slot)
        if n.count[entry] == 0:
            previous[0] = -1
            n.entries[entry].value = value
            n.entries[entry].mixed = 0
        else:
            previous[0] = n.entries[entry].link
            if value != n.entries[entry].value:
                n.entries[entry].mixed = 1
        n.entries[entry].link = slot
        n.count[entry] += 1

    cdef int _split(self, int node, int entry, int shift) except -1:
        """Turn the leaf ``entry`` of ``node`` (at ``shift``) into a child node over the next 8 bits."""
        cdef int slots[SPLIT + 1]
        cdef int child = self._new_node()
        cdef Node* parent = _node_at(self._node_blocks, node)  # (nodes never move)
        cdef Node* c = _node_at(self._node_blocks, child)
        cdef int count = parent.count[entry], slot = parent.entries[entry].link, i, sub
        cdef int child_shift = _below(shift)
        if count > SPLIT + 1:
            # Only a leaf of one repeated value splits this large, on receiving another value
            # (a mixed leaf splits as soon as it holds more than SPLIT): the older samples move
            # as one block, chain and all, and the newest joins its own entry.
            sub = (_order_key(parent.entries[entry].value) >> child_shift) & (FANOUT - 1)
            c.count[sub] = count - 1
            c.entries[sub].link = self._previous_of(slot)
            c.entries[sub].value = parent.entries[entry].value
            c.entries[sub].mixed = 0
            self._append(child, (_order_key(self._value_of(slot)) >> child_shift) & (FANOUT - 1), slot)
        else:
            for i in range(count):  # newest first
                slots[i] = slot
                slot = self._previous_of(slot)
            for i in range(count - 1, -1, -1):  # oldest first, so every chain of the child is in time order
                slot = slots[i]
                self._append(child, (_order_key(self._value_of(slot)) >> child_shift) & (FANOUT - 1), slot)
        parent.entries[entry].link = child
        parent.entries[entry].split = 1
        if child_shift > 0:  # a leaf at shift 0 holds one order key: never mixed
            for sub in range(FANOUT):
                if c.count[sub] > SPLIT and c.entries[sub].mixed:
                    self._split(child, sub, child_shift)
        return 0

    cdef void _collect(self, int node, int* slots, int* found) noexcept:
        """Gather the slots below ``node`` into ``slots`` and free its nodes."""
        cdef int entry, slot, i
        cdef Node* n = _node_at(self._node_blocks, node)
        for entry in range(FANOUT):
            if n.count[entry] == 0:
                continue
            if n.entries[entry].split:
                self._collect(n.entries[entry].link, slots, found)
                continue
            slot = n.entries[entry].link
            for i in range(n.count[entry]):
                slots[found[0]] = slot
                found[0] += 1
                slot = self._previous_of(slot)
        n.entries[0].link = self._free_node
        self._free_node = node
        self._live_nodes -= 1

    cdef void _merge(self, int node, int entry) noexcept:
        """Make the split ``entry`` of ``node`` (at most ``MERGE`` samples) one leaf again."""
        cdef int slots[MERGE]
        cdef long long ages[MERGE]
        cdef int found = 0, i, j, slot
        cdef long long age
        cdef Node* parent = _node_at(self._node_blocks, node)
        self._collect(parent.entries[entry].link, slots, &found)
        parent.entries[entry].split = 0
        parent.count[entry] = 0
        for i in range(found):  # insertion sort by age: the chain is appended oldest first
            slot = slots[i]
            age = (self._chunk[slot >> self._shift].sequence << self._shift) + (slot & self._mask)
            j = i
            while j > 0 and ages[j - 1] > age:
                slots[j] = slots[j - 1]
                ages[j] = ages[j - 1]
                j -= 1
            slots[j] = slot
            ages[j] = age
        for i in range(found):
            self._append(node, entry, slots[i])

    # -- recording ---------------------------------------------------------------------

    cdef double _value_of(self, int slot) noexcept:
        return _sample_at(self._chunk, self._shift, self._mask, slot).value

    cdef int _previous_of(self, int slot) noexcept:
        return _previous_at(self._chunk, self._shift, self._mask, slot)[0]

    cdef int _add_chunk(self) except -1:
        """Allocate one more chunk (not yet in the circle) and return it."""
        cdef int chunk = self._chunks, room = max(4, 2 * self._chunk_room)
        cdef Chunk* grown
        if chunk == self._chunk_room:
            grown = <Chunk*>PyMem_Realloc(self._chunk, room * sizeof(Chunk))
            if grown == NULL:
                raise MemoryError()
            self._chunk = grown
            self._chunk_room = room
        cdef Chunk* made = &self._chunk[chunk]
        made.samples = <Sample*>PyMem_Malloc((<size_t>1 << self._shift) * sizeof(Sample))
        made.previous = <int*>PyMem_Malloc((<size_t>1 << self._shift) * sizeof(int))
        if made.samples == NULL or made.previous == NULL:
            PyMem_Free(made.samples)
            PyMem_Free(made.previous)
            raise MemoryError()
        self._chunks += 1
        return chunk

    cdef void _enter(self, int chunk) noexcept:
        self._tail_chunk = chunk
        self._tail_offset = 0
        self._sequence += 1
        self._chunk[chunk].sequence = self._sequence

    cdef int _tail_slot(self) except -1:
        """The slot the next sample goes to, entering (or splicing in) the next chunk when
        the tail's is full. The tail never enters a chunk that still holds live samples: its
        slots keep their time order, so expiry stays first in, first out."""
        cdef int chunk, following
        if self._tail_chunk < 0:  # the first sample
            chunk = self._add_chunk()
            self._chunk[chunk].next = chunk
            self._head_chunk = chunk
            self._head_offset = 0
            self._enter(chunk)
        elif self._tail_offset > self._mask:
            following = self._chunk[self._tail_chunk].next
            if following == self._head_chunk and self._size:
                chunk = self._add_chunk()
                self._chunk[chunk].next = following
                self._chunk[self._tail_chunk].next = chunk
                following = chunk
            self._enter(following)
        return (self._tail_chunk << self._shift) | self._tail_offset

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
        cdef int slot = self._tail_slot()  # first: a failed allocation leaves the window as it was
        if self._size == self._max_samples:
            self._pop_oldest()
            self._dropped += 1
        cdef Sample* sample = _sample_at(self._chunk, self._shift, self._mask, slot)
        sample.timestamp = timestamp
        sample.value = value
        self._tail_offset += 1
        self._size += 1
        _add_exactly(self._partials, &self._partial_count, value)
        # Index it: count it on the way down, append it to the leaf it reaches.
        cdef unsigned long long key = _order_key(value)
        cdef int top = key >> TOP_SHIFT, node = self._top_node[top], shift = FIRST_SHIFT, entry
        cdef Node* n
        if node < 0:
            node = self._new_node()
            self._top_node[top] = node
        self._top_count[top] += 1
        while True:
            n = _node_at(self._node_blocks, node)
            entry = (key >> shift) & (FANOUT - 1)
            if n.entries[entry].split:
                n.count[entry] += 1
                node = n.entries[entry].link
                shift = _below(shift)
                continue
            self._append(node, entry, slot)
            if n.entries[entry].mixed and n.count[entry] > SPLIT and shift > 0:
                self._split(node, entry, shift)
            return 0

    cdef void _pop_oldest(self) noexcept:
        """Remove the oldest sample: the oldest of its leaf, so only counts change."""
        cdef double value = self._chunk[self._head_chunk].samples[self._head_offset].value
        cdef unsigned long long key = _order_key(value)
        cdef int top = key >> TOP_SHIFT, node = self._top_node[top], shift = FIRST_SHIFT, entry
        cdef int merge_node = -1, merge_entry = 0
        cdef Node* n
        self._top_count[top] -= 1
        while True:
            n = _node_at(self._node_blocks, node)
            entry = (key >> shift) & (FANOUT - 1)
            n.count[entry] -= 1
            if n.entries[entry].split:
                if merge_node < 0 and n.count[entry] <= MERGE:
                    merge_node = node
                    merge_entry = entry
                node = n.entries[entry].link
                shift = _below(shift)
                continue
            break
        _add_exactly(self._partials, &self._partial_count, -value)
        self._head_offset += 1
        if self._head_offset > self._mask:
            self._head_chunk = self._chunk[self._head_chunk].next
            self._head_offset = 0
        self._size -= 1
        if merge_node >= 0:
            self._merge(merge_node, merge_entry)

    cdef int _expire(self, double now) except -1:
        if not isfinite(now):
            raise ValueError(f"now must be a finite number, got {now!r}")
        self._drop_older_than(now - self._window_seconds)
        return 0

    cdef void _drop_older_than(self, double horizon) noexcept:
        while self._size and self._chunk[self._head_chunk].samples[self._head_offset].timestamp <= horizon:
            self._pop_oldest()

    def expire(self, double now):
        self._expire(now)

    # -- reading -----------------------------------------------------------------------

    def count(self, double now):
        self._expire(now)
        return self._size

    def sum(self, double now):
        return self.summary(now, ())[1]

    def min(self, double now):
        return self.summary(now, ())[2]

    def max(self, double now):
        return self.summary(now, ())[3]

    def mean(self, double now):
        count, total = self.summary(now, ())[:2]
        return total / count if count else NAN

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
        """``(count, sum, min, max, quantiles)``: what a snapshot needs."""
        return summarize((self,), now, qs)


# ---------------------------------------------------------------------------------------
# Several windows together
# ---------------------------------------------------------------------------------------

def summarize(windows, double now, qs):
    """``(count, sum, min, max, quantiles)`` over ``windows`` together; see the twin."""
    cdef list parts = list(windows)
    cdef list wanted = [float(q) for q in qs]
    cdef Py_ssize_t count = len(parts), w, total = 0, j, nq = len(wanted), below, above
    cdef SlidingWindow window
    cdef double position, gamma, low, high
    cdef double partials[PARTIALS]
    cdef int partial_count = 0, i
    for q in wanted:
        if not (0.0 <= q <= 1.0):
            raise ValueError(f"quantile must be between 0 and 1, got {q!r}")
    for w in range(count):
        window = <SlidingWindow?>parts[w]
        if window._window_seconds != (<SlidingWindow>parts[0])._window_seconds:
            raise ValueError("summary of windows of different lengths")
    cdef vector[View] views = vector[View](max(count, 1))
    cdef vector[int] cursors = vector[int](max(count, 1))
    cdef vector[pair[double, Py_ssize_t]] runs
    cdef vector[unsigned long long] keys
    for w in range(count):
        window = <SlidingWindow>parts[w]
        window._expire(now)
        views[w].nodes = window._node_blocks
        views[w].chunks = window._chunk
        views[w].shift = window._shift
        views[w].mask = window._mask
        views[w].top_count = window._top_count
        views[w].top_node = window._top_node
        views[w].size = window._size
        total += window._size
        for i in range(window._partial_count):
            _add_exactly(partials, &partial_count, window._partials[i])
    if total == 0:
        return (0, 0.0, NAN, NAN, tuple([NAN] * nq))
    runs.reserve(count * (SPLIT + 1))
    keys.reserve(count * (SPLIT + 1))
    cdef list results = []
    cdef double minimum, maximum
    with nogil:
        minimum = _select(views.data(), count, 0, cursors.data(), runs, keys)
        maximum = _select(views.data(), count, total - 1, cursors.data(), runs, keys)
    for j in range(nq):
        position = <double>(total - 1) * <double>wanted[j]
        below = <Py_ssize_t>floor(position)
        gamma = position - <double>below
        above = below + 1 if below + 1 < total else total - 1
        with nogil:
            low = _select(views.data(), count, below, cursors.data(), runs, keys)
            high = low if above == below else _select(views.data(), count, above, cursors.data(), runs, keys)
        results.append(_interpolate(low, high, gamma))
    return (total, _rounded_sum(partials, partial_count), minimum, maximum, tuple(results))


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
    # Per window: how many of its samples are taken, and the chunk and offset of the next.
    cdef vector[Py_ssize_t] taken = vector[Py_ssize_t](count, 0)
    cdef vector[int] chunks = vector[int](count, 0)
    cdef vector[int] offsets = vector[int](count, 0)
    cdef Py_ssize_t remaining = total
    for index in range(count):
        window = <SlidingWindow>parts[index]
        chunks[index] = window._head_chunk
        offsets[index] = window._head_offset
    while remaining:
        best = -1
        best_timestamp = 0.0
        for index in range(count):
            window = <SlidingWindow>parts[index]
            if taken[index] == window._size:
                continue
            timestamp = window._chunk[chunks[index]].samples[offsets[index]].timestamp
            if best < 0 or timestamp < best_timestamp:
                best, best_timestamp = index, timestamp
        window = <SlidingWindow>parts[best]
        sample = &window._chunk[chunks[best]].samples[offsets[best]]
        merged._push(sample.timestamp, sample.value)
        taken[best] += 1
        offsets[best] += 1
        if offsets[best] > window._mask:
            chunks[best] = window._chunk[chunks[best]].next
            offsets[best] = 0
        remaining -= 1
    return merged
