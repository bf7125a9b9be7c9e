"""theory/allocator.py against hand-worked traces and each rule it cites (CUDACachingAllocator.cpp)."""
import pytest

from theory.allocator import (AllocatorConfig, AllocatorOOM, CachingAllocator, Event, allocation_size, is_small,
                              replay, round_size, should_split)
from theory.kvrun import staircase

KiB, MiB = 1 << 10, 1 << 20


def test_round_size_is_512_bytes_or_the_power2_division():
    assert [round_size(s) for s in (1, 512, 513, 1000, 4096)] == [512, 512, 1024, 1024, 4096]
    four = AllocatorConfig(roundup_power2_divisions=4)
    assert round_size(1_200_000, four) == MiB + MiB // 4          # 1 MiB, 1.25, 1.5, 1.75: the next is 1.25 MiB
    assert round_size(MiB, four) == MiB                          # a power of two stays
    assert round_size(1200, four) == 1536                        # at or below 512·divisions: plain 512 B rounding


def test_pool_and_segment_sizes_follow_get_pool_and_get_allocation_size():
    assert is_small(MiB) and not is_small(MiB + 512)
    assert allocation_size(512) == allocation_size(MiB) == 2 * MiB
    assert allocation_size(MiB + 512) == allocation_size(10 * MiB - 512) == 20 * MiB
    assert allocation_size(10 * MiB) == 10 * MiB and allocation_size(11 * MiB) == 12 * MiB


def test_should_split_small_always_large_only_beyond_one_mib():
    assert should_split(1024, 512, small=True)
    assert not should_split(20 * MiB, 19 * MiB, small=False)                  # remainder 1 MiB: not > kSmallSize
    assert should_split(20 * MiB, 19 * MiB - 512, small=False)
    assert not should_split(40 * MiB, 4 * MiB, small=False, cfg=AllocatorConfig(max_split_size_bytes=4 * MiB))


def test_single_growing_tensor_walks_through_one_small_segment():
    a, ptrs = CachingAllocator(), []
    b1 = a.malloc(1000)                       # [0, 1024), rest [1024, 2 MiB) split off
    ptrs.append(b1.ptr)
    b2 = a.malloc(2000)                       # best fit is the rest: [1024, 3072)
    ptrs.append(b2.ptr)
    a.free(b1)                                # [0, 1024) free, its neighbour b2 is live: no merge
    b3 = a.malloc(3000)                       # 1024 too small: [3072, 6144)
    ptrs.append(b3.ptr)
    a.free(b2)                                # merges with [0, 1024): [0, 3072)
    b4 = a.malloc(4000)                       # 3072 too small: [6144, 10240)
    ptrs.append(b4.ptr)
    a.free(b3)                                # [0, 6144) after merging
    b5 = a.malloc(5000)                       # fits [0, 6144), splits 1024 off
    ptrs.append(b5.ptr)
    assert ptrs == [0, 1024, 3072, 6144, 0]             # a freed block object may take a merged neighbour's address
    s = a.state()
    assert (s.requested_bytes, s.allocated_bytes, s.reserved_bytes, s.segments) == (9000, 9216, 2 * MiB, 1)


def test_two_interleaved_sizes_use_their_own_pools_and_reuse_their_blocks():
    events, nid = [], 0
    for _ in range(3):                        # 600 KiB (small pool) and 1.5 MiB (large pool), freed each round
        events += [Event("alloc", 600 * KiB, nid), Event("alloc", 3 * MiB // 2, nid + 1),
                   Event("free", 0, nid), Event("free", 0, nid + 1)]
        nid += 2
    states = replay(events)
    assert states[1].reserved_bytes == 2 * MiB + 20 * MiB
    assert all(s.reserved_bytes == 22 * MiB for s in states[1:])
    assert states[-1].allocated_bytes == 0 and states[1].allocated_bytes == 600 * KiB + 3 * MiB // 2


def test_a_block_split_and_merged_back_is_reused_whole_without_a_split():
    a = CachingAllocator()
    x, y = a.malloc(4 * MiB), a.malloc(4 * MiB)        # one 20 MiB segment: 4 + 4 + 12 free
    assert a.state().reserved_bytes == 20 * MiB and a.state().largest_free_bytes == 12 * MiB
    a.free(x)
    a.free(y)                                          # merges with both neighbours
    assert a.state().largest_free_bytes == 20 * MiB and a.state().segments == 1
    z = a.malloc(19 * MiB + 512 * KiB)                 # remainder 0.5 MiB <= 1 MiB: the whole block is handed out
    assert z.size == 20 * MiB and a.state().allocated_bytes == 20 * MiB and a.state().reserved_bytes == 20 * MiB


def test_max_split_size_keeps_oversize_blocks_for_large_requests_only():
    cfg = AllocatorConfig(max_split_size_bytes=8 * MiB)
    a = CachingAllocator(cfg)
    a.free(a.malloc(12 * MiB))                          # a cached 12 MiB block, >= max_split_size
    a.malloc(4 * MiB)                                   # may not take it: a new 20 MiB segment
    assert a.state().reserved_bytes == 32 * MiB
    big = a.malloc(11 * MiB)                            # >= max_split: takes the 12 MiB block (< 11 + 20 MiB)
    assert big.size == 12 * MiB and a.state().reserved_bytes == 32 * MiB
    a.free(big)
    b = CachingAllocator(AllocatorConfig(max_split_size_bytes=8 * MiB, max_non_split_rounding_bytes=MiB))
    b.free(b.malloc(12 * MiB))
    b.malloc(10 * MiB)                                  # 12 >= 10 + 1: too wasteful, a new segment
    assert b.state().reserved_bytes == 22 * MiB


def test_out_of_memory_releases_cached_segments_then_fails():
    a = CachingAllocator(AllocatorConfig(capacity_bytes=22 * MiB))
    a.free(a.malloc(12 * MiB))
    a.malloc(14 * MiB)                                   # 12 + 14 > 22: the cached 12 MiB segment goes back
    assert a.state().reserved_bytes == 14 * MiB and a.oom_releases == 1
    with pytest.raises(AllocatorOOM):
        a.malloc(9 * MiB)                                # a 20 MiB segment; nothing cached to release


def test_replay_skips_frees_of_blocks_it_never_saw():
    states = replay([Event("free", 0, 7), Event("alloc", 100, 1), Event("free", 0, 1)])
    assert [s.allocated_bytes for s in states] == [0, 512, 0]
    with pytest.raises(ValueError):
        replay([Event("resize", 1, 1)])


def dynamic_cache_events(layers: int, per_token_bytes: int, prompt: int, steps: int):
    """Only the cache: per step, each layer's K then V is concatenated (new block) and the old one freed."""
    ev, nid, live, marks = [], 0, {}, []
    for t in range(prompt, prompt + steps):
        for key in [(l, kv) for l in range(layers) for kv in (0, 1)]:
            ev.append(Event("alloc", per_token_bytes * (t + 1), nid))
            if key in live:
                ev.append(Event("free", 0, live[key]))
            live[key], nid = nid, nid + 1
        marks.append(len(ev) - 1)
    return ev, marks


def test_seed_001_cache_alone_climbs_in_2_mib_small_segments():
    """Seed 001: d 1024, 8 layers, 8 heads of 128, bf16: 2048 B per token per K (or V) tensor, 32 KB per token in
    all. Every tensor stays <= 1 MiB (small pool) for 200 tokens, so reserved grows by whole 2 MiB segments."""
    ev, marks = dynamic_cache_events(8, 2048, 32, 200)
    states = replay(ev)
    tokens = [33 + i for i in range(len(marks))]
    reserved = [states[i].reserved_bytes for i in marks]
    sc = staircase(tokens, reserved)
    jumps = {b - a for a, b in zip(reserved, reserved[1:]) if b != a}
    assert jumps == {2 * MiB}
    assert 35 <= sc["median_period_tokens"] <= 55              # this replay: 2 MiB every ~45 tokens
    assert 32_768 < sc["growth_bytes_per_token"] < 2 * 32_768   # more than the tensors, far from the seed's 3x
