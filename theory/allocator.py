"""A model of PyTorch's CUDA caching allocator: replay an alloc/free trace, get allocated and reserved bytes.

Rules, as read (torch 2.13.0, git cf30153c; constants from the installed header c10/core/AllocatorConfig.h, the
allocator itself from pytorch/pytorch c10/cuda/CUDACachingAllocator.cpp as stored at commit 001074d2 — the
stored copy gives character offsets, not line numbers, so its rules are cited by function name):
  AllocatorConfig.h:17-25   kSmallBuffer 2 MiB, kMinBlockSize 512 B, kSmallSize 1 MiB, kMinLargeAlloc 10 MiB,
                            kRoundLarge 2 MiB; kLargeBuffer 20 MiB (CUDACachingAllocator.cpp, top of file).
  AllocatorConfig.h:180-199 max_split_size (default SIZE_MAX: every block may split, line 342),
                            max_non_split_rounding_size (default 20 MiB), roundup_power2_divisions (default none).
  round_size()              < 512 B -> 512 B; else a multiple of 512 B, or with roundup_power2_divisions = n > 1
                            and size > 512·n, the next of n equal steps between two powers of two
                            (roundup_power2_next_division()).
  get_pool()                size <= kSmallSize -> the small pool, else the large pool (one of each per stream).
  get_allocation_size()     a new segment: <= 1 MiB -> 2 MiB; < 10 MiB -> 20 MiB; else rounded up to 2 MiB.
  get_free_block()          best fit: the smallest free block of the pool with size >= request, ties by address
                            (BlockComparatorSize orders by stream, size, address); a request below max_split_size
                            never takes a block >= max_split_size; a request >= max_split_size takes a block only
                            if it is smaller than request + max_non_split_rounding_size.
  should_split()            small pool: split when the remainder >= 512 B; large pool: when the request is below
                            max_split_size and the remainder > kSmallSize (1 MiB). The request keeps the front.
  free_block() / try_merge_blocks()  a freed block merges with free neighbours of its segment, then returns to
                            its pool; segments are never returned to the device on their own.
  malloc() -> alloc_block() new segment when no free block fits (cudaMalloc); when that would exceed the device
                            (here: `capacity_bytes`), release_cached_blocks() frees every cached whole segment and
                            retries; failing again is an out-of-memory error.
  alloc_found_block() / free() allocated_bytes counts block sizes (rounded), reserved_bytes counts segments.

Left out: other streams (one stream is modelled), CUDA-graph private pools, expandable_segments (one growing
segment per pool instead of separate ones), garbage_collection_threshold, release_available_cached_blocks (only
acts with max_split_size set), and allocations made outside a traced pass — cuBLAS/cuDNN workspaces (allocated
through this allocator once per handle and kept), the CUDA context, kernels' own scratch. Segment addresses come
from a bump pointer (a real cudaMalloc's addresses only break best-fit ties).
"""
from bisect import bisect_left, insort
from dataclasses import dataclass

MIN_BLOCK_BYTES = 512               # kMinBlockSize
SMALL_SIZE_BYTES = 1 << 20          # kSmallSize: the largest "small" request
SMALL_BUFFER_BYTES = 2 << 20        # kSmallBuffer: small-pool segment
MIN_LARGE_ALLOC_BYTES = 10 << 20    # kMinLargeAlloc: below this a large request gets a 20 MiB segment
ROUND_LARGE_BYTES = 2 << 20         # kRoundLarge
LARGE_BUFFER_BYTES = 20 << 20       # kLargeBuffer


class AllocatorOOM(Exception):
    pass


@dataclass(frozen=True)
class AllocatorConfig:
    """PYTORCH_CUDA_ALLOC_CONF's options that change the rules above (defaults: torch's)."""
    max_split_size_bytes: int | None = None              # max_split_size_mb; None: unlimited
    max_non_split_rounding_bytes: int = LARGE_BUFFER_BYTES   # max_non_split_rounding_mb
    roundup_power2_divisions: int = 0                    # one value for every size (0/1: off)
    capacity_bytes: int | None = None                    # device memory the allocator may reserve; None: unbounded

    @property
    def max_split(self) -> float:
        return float("inf") if self.max_split_size_bytes is None else self.max_split_size_bytes


def round_size(size: int, cfg: AllocatorConfig = AllocatorConfig()) -> int:
    """round_size(): what a request of `size` bytes occupies."""
    if size < MIN_BLOCK_BYTES:
        return MIN_BLOCK_BYTES
    n = cfg.roundup_power2_divisions
    if n > 1 and size > MIN_BLOCK_BYTES * n:
        if size & (size - 1) == 0:
            return size
        floor = 1 << (size.bit_length() - 1)
        step = floor >> (n.bit_length() - 1)              # power2_floor >> log2(divisions)
        if step == 0:
            return floor << 1
        low = size & ~(step - 1)
        return size if low == size else low + step
    return -(-size // MIN_BLOCK_BYTES) * MIN_BLOCK_BYTES


def is_small(rounded: int) -> bool:
    """get_pool()."""
    return rounded <= SMALL_SIZE_BYTES


def allocation_size(rounded: int) -> int:
    """get_allocation_size(): the segment a request that found no free block asks the device for."""
    if rounded <= SMALL_SIZE_BYTES:
        return SMALL_BUFFER_BYTES
    if rounded < MIN_LARGE_ALLOC_BYTES:
        return LARGE_BUFFER_BYTES
    return -(-rounded // ROUND_LARGE_BYTES) * ROUND_LARGE_BYTES


def should_split(block_bytes: int, rounded: int, small: bool, cfg: AllocatorConfig = AllocatorConfig()) -> bool:
    remaining = block_bytes - rounded
    if small:
        return remaining >= MIN_BLOCK_BYTES
    return rounded < cfg.max_split and remaining > SMALL_SIZE_BYTES


class _Block:
    __slots__ = ("ptr", "size", "small", "allocated", "requested", "prev", "next")

    def __init__(self, ptr, size, small):
        self.ptr, self.size, self.small = ptr, size, small
        self.allocated, self.requested, self.prev, self.next = False, 0, None, None


@dataclass(frozen=True)
class State:
    """After one event: live requested bytes, their rounded blocks, and the segments reserved."""
    requested_bytes: int
    allocated_bytes: int
    reserved_bytes: int
    segments: int
    largest_free_bytes: int


class CachingAllocator:
    """One device, one stream: a small and a large pool of free blocks, each sorted by (size, address)."""

    def __init__(self, cfg: AllocatorConfig = AllocatorConfig()):
        self.cfg = cfg
        self.pools = {True: [], False: []}           # sorted [(size, ptr)] of free blocks
        self.free_at = {}                            # (size, ptr) -> free block
        self.segments = {}                           # base ptr -> segment's first block
        self.next_base = 0
        self.requested = self.allocated = self.reserved = 0
        self.oom_releases = 0

    def _insert(self, b: _Block) -> None:
        insort(self.pools[b.small], (b.size, b.ptr))
        self.free_at[(b.size, b.ptr)] = b

    def _remove(self, b: _Block) -> None:
        pool = self.pools[b.small]
        del pool[bisect_left(pool, (b.size, b.ptr))]
        del self.free_at[(b.size, b.ptr)]

    def _best_fit(self, rounded: int, small: bool) -> _Block | None:
        pool, cfg = self.pools[small], self.cfg
        i = bisect_left(pool, (rounded, -1))
        if i == len(pool):
            return None
        size, ptr = pool[i]
        if rounded < cfg.max_split <= size:
            return None
        if rounded >= cfg.max_split and size >= rounded + cfg.max_non_split_rounding_bytes:
            return None
        return self.free_at[(size, ptr)]

    def _new_segment(self, size: int, small: bool) -> _Block | None:
        cap = self.cfg.capacity_bytes
        if cap is not None and self.reserved + size > cap:
            return None
        b = _Block(self.next_base, size, small)
        self.next_base += -(-size // ROUND_LARGE_BYTES) * ROUND_LARGE_BYTES
        self.segments[b.ptr] = b
        self.reserved += size
        return b

    def _release_cached(self) -> bool:
        """release_cached_blocks(): return every free, unsplit segment to the device."""
        whole = [b for b in self.free_at.values() if b.prev is None and b.next is None]
        for b in whole:
            self._remove(b)
            del self.segments[b.ptr]
            self.reserved -= b.size
        self.oom_releases += 1
        return bool(whole)

    def malloc(self, size: int) -> _Block:
        rounded = round_size(size, self.cfg)
        small = is_small(rounded)
        b = self._best_fit(rounded, small)
        if b is not None:
            self._remove(b)
        else:
            seg = allocation_size(rounded)
            b = self._new_segment(seg, small)
            if b is None and self._release_cached():
                b = self._new_segment(seg, small)
            if b is None:
                raise AllocatorOOM(f"cannot reserve a {seg} B segment: {self.reserved} B of "
                                   f"{self.cfg.capacity_bytes} B reserved, {self.allocated} B allocated")
        if should_split(b.size, rounded, small, self.cfg):
            rest = _Block(b.ptr + rounded, b.size - rounded, small)
            rest.prev, rest.next = b, b.next
            if b.next is not None:
                b.next.prev = rest
            b.next, b.size = rest, rounded
            self._insert(rest)
        b.allocated, b.requested = True, size
        self.requested += size
        self.allocated += b.size
        return b

    def free(self, b: _Block) -> None:
        b.allocated = False
        self.requested -= b.requested
        self.allocated -= b.size
        for other in (b.prev, b.next):               # try_merge_blocks(block, prev) then (block, next)
            if other is not None and not other.allocated:
                self._remove(other)
                if other is b.prev:
                    b.ptr, b.prev = other.ptr, other.prev
                    if b.prev is not None:
                        b.prev.next = b
                    else:
                        self.segments[b.ptr] = b
                else:
                    b.next = other.next
                    if b.next is not None:
                        b.next.prev = b
                b.size += other.size
        self._insert(b)

    def state(self) -> State:
        largest = max((s for pool in self.pools.values() for s, _ in pool[-1:]), default=0)
        return State(self.requested, self.allocated, self.reserved, len(self.segments), largest)


@dataclass(frozen=True)
class Event:
    action: str          # "alloc" or "free"
    size_bytes: int      # requested bytes (a free's size is ignored: the block remembers it)
    addr_id: int         # pairs a free with its alloc


def replay(events, cfg: AllocatorConfig = AllocatorConfig()) -> list[State]:
    """State after each event. A free with no alloc in the trace (a block made before recording began) and an
    alloc of 0 bytes change nothing."""
    a, live, out = CachingAllocator(cfg), {}, []
    for e in events:
        if e.action == "alloc":
            if e.size_bytes > 0:
                live[e.addr_id] = a.malloc(e.size_bytes)
        elif e.action == "free":
            b = live.pop(e.addr_id, None)
            if b is not None:
                a.free(b)
        else:
            raise ValueError(f"unknown allocator action {e.action!r}")
        out.append(a.state())
    return out
