"""The control channel of a read-write mount: a unix socket in the (0700) staging
directory speaking JSON lines. The CLI sends one request per connection and reads
replies until one carries "done"; commit progress arrives as intermediate lines.

The client side is `wimfs.mounts.request` (no pyfuse3/trio needed there).
Requests: {"cmd": "status"}, {"cmd": "commit", "append", "name", "description",
"check", "force"}, {"cmd": "exit_mode", "mode": "clean"|"discard"|"keep"}.
"""

from __future__ import annotations

import json
import logging
import os
import socket as _socket

import trio

from wimfs.errors import WimfsError
from wimfs.fuse.rwops import RwOperations
from wimfs.progress import ProgressEvent

log = logging.getLogger(__name__)


async def serve(ops: RwOperations, path: str, state: dict, task_status=trio.TASK_STATUS_IGNORED):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = trio.socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    from wimfs.mounts import unix_socket_path

    with unix_socket_path(path) as p:
        await sock.bind(p)
    os.chmod(path, 0o600)
    sock.listen(8)
    task_status.started()
    async with trio.open_nursery() as nursery:
        try:
            while True:
                conn, _ = await sock.accept()
                nursery.start_soon(_handle, ops, conn, state)
        finally:
            sock.close()


async def _send(conn, obj) -> None:
    data = (json.dumps(obj) + "\n").encode()
    while data:
        n = await conn.send(data)
        data = data[n:]


async def _handle(ops: RwOperations, conn, state: dict) -> None:
    with conn:
        buf = b""
        try:
            while b"\n" not in buf:
                chunk = await conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            req = json.loads(buf.split(b"\n", 1)[0])
            await _dispatch(ops, conn, state, req)
        except (OSError, trio.BrokenResourceError):
            return
        except WimfsError as exc:
            await _reply_error(conn, exc)
        except Exception as exc:  # never let a client kill the daemon
            log.exception("control request failed")
            await _reply_error(conn, exc)


async def _reply_error(conn, exc) -> None:
    try:
        await _send(conn, {"done": True, "ok": False, "error": str(exc),
                           "code": getattr(exc, "exit_code", 1)})
    except (OSError, trio.BrokenResourceError):
        pass


async def _dispatch(ops: RwOperations, conn, state: dict, req: dict) -> None:
    cmd = req.get("cmd")
    ov = ops.overlay
    if cmd == "status":
        diff = ov.diff()
        await _send(conn, {"done": True, "ok": True, "wim": ov.wim_path, "index": ov.index,
                           "staging": ov.staging, "pid": os.getpid(),
                           "staged_bytes": ov.staged_bytes(),
                           "open_for_write": ops.open_for_write_paths(),
                           "committing": ops.committing,
                           "changes": [{"change": e.change, "path": e.path, "size": e.size,
                                        "old_path": e.old_path} for e in diff]})
    elif cmd == "commit":
        progress = {"done": 0, "total": 0}

        def cb(ev: ProgressEvent) -> None:
            progress["done"], progress["total"] = ev.done, ev.total

        result = None
        error = None
        finished = trio.Event()

        async def run():
            nonlocal result, error
            try:
                result = await ops.commit(force=bool(req.get("force")),
                                          append=bool(req.get("append")),
                                          name=req.get("name"),
                                          description=req.get("description"),
                                          check=bool(req.get("check")), progress=cb)
            except WimfsError as exc:
                error = exc
            except OSError as exc:
                error = WimfsError(f"commit failed: {exc}")
            finally:
                finished.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            while True:
                with trio.move_on_after(0.5):
                    await finished.wait()
                if finished.is_set():
                    break
                try:
                    await _send(conn, {"progress": dict(progress)})
                except (OSError, trio.BrokenResourceError):
                    pass   # the client went away; the commit goes on
        if error is not None:
            raise error
        await _send(conn, {"done": True, "ok": True, "index": result.new_index,
                           "written_bytes": result.written_bytes,
                           "seconds": round(result.seconds, 3)})
    elif cmd == "exit_mode":
        mode = req.get("mode")
        if mode not in ("clean", "discard", "keep"):
            raise WimfsError(f"bad exit mode {mode!r}")
        state["exit_mode"] = mode
        await _send(conn, {"done": True, "ok": True})
    else:
        raise WimfsError(f"unknown control command {cmd!r}")
