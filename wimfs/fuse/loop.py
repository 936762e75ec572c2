"""A cheaper way for pyfuse3's worker loop to wait for the next request, under trio.

pyfuse3 (3.5) reads every request the same way: a worker task takes a `trio.Lock`,
waits with `trio.lowlevel.wait_readable(fuse_fd)`, releases the lock, reads the request
and runs its handler. Under trio each of those steps is a trip through the scheduler:
the lock's acquire and release are checkpoints, the wait registers the fd with epoll and
parks the task, and a second worker parked on the lock is handed it on every release. A
small file read by `cat` costs three requests (OPEN, READ, RELEASE), and in the 100k-file
benchmark the daemon spent more time in that machinery than in our handlers.

pyfuse3 looks these names up on its module global `trio` at run time (its own
`pyfuse3.asyncio.enable()` swaps that global the same way), so `enable()` gives it a
module that is trio except for two things:

* `Lock`: taking a free lock does not yield; releasing it wakes a waiter without
  handing it the lock, so the task that just answered a request takes the lock again at
  once. A woken waiter that finds the lock taken parks again.
* `lowlevel.wait_readable`: asks the kernel with `poll(0)` whether a request is already
  waiting, and keeps asking for up to `SPIN_S` before falling back to trio's wait (which
  sleeps in epoll). The next request of a program working through files arrives a few
  tens of microseconds after our reply; sleeping and being woken for it costs more than
  that (on a virtual machine the idle vCPU halts and needs an IPI through the host: this
  is what KVM's own halt polling, 200 us by default, avoids). The spin stops at once when
  a worker thread has finished something the loop must pick up (trio's run_sync_soon
  queue), is not done on a one-CPU machine (the client could not run meanwhile), and
  every `YIELD_EVERY` fast waits the task passes a trio checkpoint so that other tasks
  (the control socket, signals) run while requests keep coming. Before spinning, the
  wait does the loop's idle work (`idle`: the read-ahead of wimfs.fuse.prefetch) one
  small step at a time, asking the kernel for a request between two steps.

Concurrency is unchanged: a handler that awaits (a big file's decompression on the
reader's threads) yields, and a second worker, woken by the release, reads the next
request meanwhile. Measured on the 100k-file image, cold (README, "FUSE request loop").
"""

from __future__ import annotations

import os
import select
import sys
import time
import types

import trio

SPIN_S = 200e-6         # how long a wait polls before sleeping (KVM's halt_poll_ns default)
YIELD_EVERY = 32        # fast waits between two trio checkpoints


class FastLock:
    """An unfair lock for pyfuse3's readers: no checkpoint when it is free."""

    __slots__ = ("_held", "_lot")

    def __init__(self) -> None:
        self._held = False
        self._lot = trio.lowlevel.ParkingLot()

    async def __aenter__(self) -> None:
        while self._held:
            await self._lot.park()
        self._held = True

    async def __aexit__(self, *exc) -> None:
        self._held = False
        if self._lot:
            self._lot.unpark()


def _can_spin() -> bool:
    try:
        return len(os.sched_getaffinity(0)) > 1
    except (AttributeError, OSError):
        return (os.cpu_count() or 1) > 1


class _Waiter:
    """`wait_readable` with a polling fast path, for the one fd pyfuse3 waits on."""

    def __init__(self, spin_s: float, idle=None) -> None:
        self._polls: dict[int, select.poll] = {}
        self._fast = 0
        self.spin_s = spin_s
        self.idle = idle        # work for the loop while no request waits (`pending`, `step`)
        self.stats = {"fast": 0, "slept": 0}

    def _poll(self, fd: int) -> select.poll:
        p = self._polls.get(fd)
        if p is None:
            p = self._polls[fd] = select.poll()
            p.register(fd, select.POLLIN)
        return p

    async def wait_readable(self, fd) -> None:
        fd = fd if isinstance(fd, int) else fd.fileno()
        if self._fast >= YIELD_EVERY:
            self._fast = 0
            await trio.lowlevel.checkpoint()
        if self._ready(self._poll(fd)):
            self._fast += 1
            self.stats["fast"] += 1
            return
        self._fast = 0
        self.stats["slept"] += 1
        await trio.lowlevel.wait_readable(fd)

    def _ready(self, p: select.poll) -> bool:
        if p.poll(0):
            return True
        stats = trio.lowlevel.current_statistics
        idle = self.idle
        while idle is not None and idle.pending:
            idle.step()                 # (one small unit of work: a request waits ~30 us)
            if p.poll(0):
                return True
            if stats().run_sync_soon_queue_size:
                return False
        if not self.spin_s:
            return False
        clock = time.perf_counter
        end = clock() + self.spin_s
        n = 0
        while clock() < end:
            if p.poll(0):
                return True
            n += 1
            if not n & 3 and stats().run_sync_soon_queue_size:
                return False    # a worker thread is done: let the scheduler run
        return False

    def forget(self, fd) -> None:
        self._polls.pop(fd if isinstance(fd, int) else fd.fileno(), None)


def _shim(waiter: _Waiter) -> types.ModuleType:
    def notify_closing(fd) -> None:
        waiter.forget(fd)
        trio.lowlevel.notify_closing(fd)

    lowlevel = types.SimpleNamespace(
        wait_readable=waiter.wait_readable, notify_closing=notify_closing,
        current_task=trio.lowlevel.current_task,
        current_trio_token=trio.lowlevel.current_trio_token)
    mod = types.ModuleType("wimfs.fuse.loop.trio", "trio, as pyfuse3's reader loop sees it")
    mod.__getattr__ = lambda name: getattr(trio, name)      # everything else: trio's own
    mod.Lock = FastLock
    mod.lowlevel = lowlevel
    return mod


def enable(spin_s: float | None = None, idle=None) -> _Waiter:
    """Make pyfuse3's reader loop use the fast lock and wait (call before
    `pyfuse3.main`); `idle` (`pending`, `step()`) is run a step at a time while no
    request waits. Returns the waiter (its `stats`: fast and sleeping waits)."""
    if spin_s is None:
        spin_s = SPIN_S if _can_spin() else 0.0
    waiter = _Waiter(spin_s, idle)
    sys.modules["pyfuse3"].trio = _shim(waiter)
    return waiter


def disable() -> None:
    sys.modules["pyfuse3"].trio = trio
