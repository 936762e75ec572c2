"""Mount lifecycle: init the FUSE session, serve until unmounted or signalled,
always close the session."""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
from collections.abc import Callable

import pyfuse3
import trio

from wimfs.errors import MountError
from wimfs.fuse import loop
from wimfs.fuse.ops import WimOperations

log = logging.getLogger(__name__)


def fuse_options(fsname: str, allow_other: bool, read_only: bool = True) -> set[str]:
    opts = set(pyfuse3.default_options)
    opts |= {"subtype=wimfs", "fsname=" + fsname.replace(",", "_").replace(" ", "_")}
    if read_only:
        opts.add("ro")
    if allow_other:
        opts.add("allow_other")
    return opts


def serve(ops: WimOperations, mountpoint: str, options: set[str],
          on_ready: Callable[[], None] | None = None, control=None) -> None:
    """Mount and serve until unmounted. `control(nursery)` is an async function started
    next to the FUSE loop (the control socket of read-write mounts)."""
    try:
        pyfuse3.init(ops, mountpoint, options)
    except RuntimeError as exc:
        raise MountError(f"cannot mount on {mountpoint}: {exc}") from None
    try:
        faulthandler.register(signal.SIGUSR1)
    except (AttributeError, ValueError):
        pass
    waiter = None
    # (diagnostics, for A/B runs: pyfuse3's own loop; no read-ahead across small files)
    if os.environ.get("WIMFS_READAHEAD", "1") == "0":
        ops.prefetch.enabled = False
    if os.environ.get("WIMFS_FUSE_LOOP", "fast") != "trio":
        waiter = loop.enable(_spin_from_env(), ops.prefetch)
    else:
        ops.prefetch.enabled = False    # (it runs in the fast loop's idle time)
    try:
        trio.run(_main, on_ready, control)
    finally:
        # After main() returns the kernel has unmounted (or we were signalled).
        pyfuse3.close(unmount=True)
        loop.disable()
    log.debug("served %d inodes; %d READ requests; reader stats %s; waits %s; "
              "read-ahead %s", ops.total_inodes, ops.read_requests, ops.reader.stats,
              waiter.stats if waiter else "-", ops.prefetch.stats)


def _spin_from_env() -> float | None:
    """WIMFS_FUSE_SPIN_US (diagnostics): microseconds to poll before sleeping; unset or
    not a number: the default."""
    spin = os.environ.get("WIMFS_FUSE_SPIN_US")
    try:
        return None if spin is None else max(0.0, float(spin)) / 1e6
    except ValueError:
        log.warning("WIMFS_FUSE_SPIN_US=%r is not a number: using the default", spin)
        return None


async def _main(on_ready, control) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_signals)
        if control is not None:
            await nursery.start(control)
        if on_ready:
            on_ready()
        await pyfuse3.main(min_tasks=2, max_tasks=64)
        nursery.cancel_scope.cancel()


async def _signals() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as sigs:
        async for sig in sigs:
            log.info("signal %d: unmounting", sig)
            pyfuse3.terminate()
            return
