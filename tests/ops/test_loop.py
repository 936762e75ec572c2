"""wimfs.fuse.loop: the lock and wait pyfuse3's reader loop is given (no mount needed:
a pipe stands in for /dev/fuse). Every real mount in the suite runs through them too."""

from __future__ import annotations

import os
import threading
import time

import pyfuse3
import pytest
import trio
import trio.testing

from wimfs.fuse import loop


@pytest.fixture
def pipe():
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


async def test_free_lock_is_taken_without_yielding():
    lock = loop.FastLock()
    ran = []

    async def other():
        ran.append("other")

    async with trio.open_nursery() as n:
        n.start_soon(other)              # runnable, but runs only when we yield
        async with lock:
            pass
        async with lock:
            pass
        assert ran == []
        await trio.testing.wait_all_tasks_blocked()
        assert ran == ["other"]


async def test_lock_excludes_and_wakes_waiters():
    lock = loop.FastLock()
    inside, most, done = [0], [0], []

    async def worker(k):
        for _ in range(20):
            async with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
                await trio.sleep(0)          # yield while holding it
                inside[0] -= 1
        done.append(k)

    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            for k in range(5):
                n.start_soon(worker, k)
    assert most[0] == 1 and sorted(done) == list(range(5))


async def test_ready_fd_returns_at_once_and_checkpoints_every_few(pipe):
    r, w = pipe
    waiter = loop._Waiter(spin_s=0.0)
    os.write(w, b"x")
    ran = []

    async def other():
        ran.append(1)

    async with trio.open_nursery() as n:
        n.start_soon(other)
        for _ in range(loop.YIELD_EVERY):
            await waiter.wait_readable(r)
        assert ran == [] and waiter.stats == {"fast": loop.YIELD_EVERY, "slept": 0}
        # The next wait passes a checkpoint; `other` (runnable all along) runs in that
        # scheduler batch, before or after us (trio shuffles a batch), so by the end of
        # the following checkpoint at the latest.
        for _ in range(loop.YIELD_EVERY + 1):
            await waiter.wait_readable(r)
        assert ran == [1]


async def _wait_for_a_late_request(waiter: loop._Waiter, r: int, w: int) -> None:
    """`waiter` waits on `r` while a task writes to `w` 50 ms later."""
    async def later():
        await trio.sleep(0.05)
        os.write(w, b"x")

    with trio.fail_after(5):
        async with trio.open_nursery() as n:
            n.start_soon(later)
            await waiter.wait_readable(r)


async def test_idle_fd_sleeps_in_trio_until_readable(pipe):
    r, w = pipe
    waiter = loop._Waiter(spin_s=0.0)
    await _wait_for_a_late_request(waiter, r, w)
    assert waiter.stats == {"fast": 0, "slept": 1}


async def test_spin_catches_a_request_that_comes_soon(pipe):
    r, w = pipe
    waiter = loop._Waiter(spin_s=5.0)
    t = threading.Timer(0.02, os.write, (w, b"x"))
    t.start()
    start = time.monotonic()
    await waiter.wait_readable(r)
    t.join()
    assert waiter.stats == {"fast": 1, "slept": 0} and time.monotonic() - start < 4


async def test_spin_stops_when_a_thread_hands_work_to_the_loop(pipe):
    """A decompression finished on a worker thread (run_sync_soon) ends the spin at once,
    so its waiting request is not held up by a spin of SPIN_S."""
    r, w = pipe
    waiter = loop._Waiter(spin_s=30.0)
    token = trio.lowlevel.current_trio_token()
    woke = trio.Event()
    t = threading.Timer(0.05, token.run_sync_soon, (woke.set,))
    t.start()

    async def data_after_wake():
        await woke.wait()
        os.write(w, b"x")

    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            n.start_soon(data_after_wake)
            await trio.sleep(0)              # let it park on the event
            start = time.monotonic()
            await waiter.wait_readable(r)
    t.join()
    assert time.monotonic() - start < 10 and waiter.stats["slept"] == 1


class Work:
    """Idle work of `steps` steps; a step may make the fd readable (a request arrives)."""

    def __init__(self, steps: int, write_at: int | None = None, w: int | None = None):
        self.left, self.done, self.write_at, self.w = steps, 0, write_at, w

    @property
    def pending(self) -> bool:
        return self.left > 0

    def step(self) -> None:
        self.left -= 1
        self.done += 1
        if self.done == self.write_at:
            os.write(self.w, b"x")


async def test_idle_work_runs_while_no_request_waits(pipe):
    r, w = pipe
    work = Work(5)
    waiter = loop._Waiter(spin_s=0.0, idle=work)
    await _wait_for_a_late_request(waiter, r, w)
    assert work.done == 5 and waiter.stats == {"fast": 0, "slept": 1}


async def test_idle_work_stops_for_a_request(pipe):
    """A request that arrives between two steps is answered before the next step; one
    already waiting is answered before any."""
    r, w = pipe
    work = Work(10, write_at=3, w=w)
    waiter = loop._Waiter(spin_s=0.0, idle=work)
    with trio.fail_after(5):
        await waiter.wait_readable(r)
    assert work.done == 3 and waiter.stats == {"fast": 1, "slept": 0}
    with trio.fail_after(5):
        await waiter.wait_readable(r)       # (still readable: not read)
    assert work.done == 3


def test_enable_gives_pyfuse3_the_shim_and_disable_restores_trio():
    try:
        waiter = loop.enable(spin_s=0.0)
        shim = pyfuse3.trio
        assert shim is not trio and shim.Lock is loop.FastLock
        assert shim.lowlevel.wait_readable == waiter.wait_readable
        assert shim.ClosedResourceError is trio.ClosedResourceError     # the rest: trio's
        assert shim.open_nursery is trio.open_nursery
    finally:
        loop.disable()
    assert pyfuse3.trio is trio


def test_no_spin_on_one_cpu(monkeypatch):
    """On one CPU the client could not run while the daemon polls: no spin at all."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    try:
        assert loop.enable().spin_s == 0.0
    finally:
        loop.disable()
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    try:
        assert loop.enable().spin_s == loop.SPIN_S
    finally:
        loop.disable()


def test_spin_setting_from_the_environment(monkeypatch):
    from wimfs.fuse.mount import _spin_from_env

    monkeypatch.delenv("WIMFS_FUSE_SPIN_US", raising=False)
    assert _spin_from_env() is None
    monkeypatch.setenv("WIMFS_FUSE_SPIN_US", "50")
    assert _spin_from_env() == pytest.approx(50e-6)
    monkeypatch.setenv("WIMFS_FUSE_SPIN_US", "lots")
    assert _spin_from_env() is None                 # a warning, then the default
