# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: language = c++
"""Compiled block hashing and prefix cache: the fast twin of ``fakeai._prefix_py``.

``fakeai/_prefix_py.py`` is the specification; read its docstrings for the rules. The cache
keeps its blocks in slots (parallel C++ vectors) found through an unordered map, so each
operation is O(blocks in the prompt) with no Python object per block beyond the hashes.
"""

from cython.operator cimport dereference as deref
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy
from libcpp.unordered_map cimport unordered_map
from libcpp.vector cimport vector


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

    def reset(self):
        """Drop every cached block no running request uses (not counted as evictions); the
        blocks dropped. See the twin's ``reset``."""
        cdef Py_ssize_t slot = self._next[0], after, dropped = 0
        while slot != 0:
            after = self._next[slot]
            self._index.erase(self._hash[slot])
            self._spare.push_back(slot)
            dropped += 1
            slot = after
        self._next[0] = 0
        self._prev[0] = 0
        return dropped

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
# Choosing among workers
# ---------------------------------------------------------------------------------------


def least_busy(list workers not None, bint by_load):
    """The position of the least busy worker (see the twin's ``least_busy``)."""
    if not workers:  # (unchecked indexing below)
        raise ValueError("least_busy needs at least one worker")
    cdef PrefixCache worker, best_worker = <PrefixCache?>workers[0]
    cdef Py_ssize_t best = 0, index
    cdef bint better
    for index in range(1, len(workers)):
        worker = <PrefixCache?>workers[index]
        if by_load and worker.active_requests != best_worker.active_requests:
            better = worker.active_requests < best_worker.active_requests
        else:
            better = worker._index.size() < best_worker._index.size()
        if better:
            best = index
            best_worker = worker
    return best
