"""The free-mode memory model as a pure state machine (no processes, no segment)."""

from __future__ import annotations

from shmkernel.memory.free_buffer import FreeBuffer


def _never_commit(model: str) -> FreeBuffer:
    return FreeBuffer(model, seed=1, commit_p=0.0, stale_p=1.0)


def test_tso_forwards_its_own_store_and_hides_it_from_memory_until_a_barrier():
    mem = [0, 0]
    b = _never_commit("tso")
    b.store(mem, 0, 7, exchange=lambda v, x: None)
    assert b.load(mem, 0) == 7 and mem[0] == 0  # forwarded; not yet in memory
    b.full_barrier(mem)
    assert mem[0] == 7 and not b.sb


def test_weak_reads_a_stale_value_until_a_read_barrier():
    mem = [1]
    b = _never_commit("weak")
    assert b.load(mem, 0) == 1
    mem[0] = 2  # another CPU's store
    assert b.load(mem, 0) == 1  # its cached view (stale_p = 1)
    b.read_barrier()
    assert b.load(mem, 0) == 2


def test_weak_commits_never_pass_a_write_barrier_or_an_older_store_to_the_word():
    for seed in range(50):
        mem = [0, 0]
        b = FreeBuffer("weak", seed=seed, commit_p=1.0)
        b.store(mem, 0, 1, exchange=lambda v, x: None)
        b.write_barrier()
        b.store(mem, 1, 1, exchange=lambda v, x: None)
        seen = []
        while b.sb:
            b.tick(mem)
            seen.append(tuple(mem))
        assert (0, 1) not in seen  # y = 1 never visible before x = 1


def test_sc_stores_go_straight_to_memory():
    mem = [0]
    b = FreeBuffer("sc", seed=0)
    b.store(mem, 0, 5, exchange=mem.__setitem__)
    assert mem[0] == 5 and not b.sb
