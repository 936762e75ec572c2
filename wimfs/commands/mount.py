"""`wimfs mount`, `unmount`, `commit`, `status`, `mounts`, `remount`, `cleanup`."""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time

from wimfs import mounts, progress
from wimfs.commands import image_spec
from wimfs.errors import (
    EXIT_MOUNT,
    BusyError,
    MountError,
    PathNotFoundError,
    UsageError,
    WimfsError,
)
from wimfs.imagespec import ImageSpec
from wimfs.paths import find_mount, state_dir

log = logging.getLogger(__name__)

READY_ENV = "WIMFS_READY_FD"


def _check_mountdir(path: str) -> str:
    if not os.path.exists(path):
        # A dead FUSE mount ("Transport endpoint is not connected") also lands here.
        m = find_mount(path)
        if m is not None:
            raise BusyError(f"{path} is a dead {m['fstype']} mount; run 'wimfs cleanup' or "
                            "'wimfs remount'")
        raise PathNotFoundError(f"mount directory {path} does not exist")
    if not os.path.isdir(path):
        raise MountError(f"{path} is not a directory")
    if os.path.ismount(path) and (m := find_mount(path)) and m["fstype"].startswith("fuse"):
        raise BusyError(f"{path} is already a mount point ({m['fstype']} of {m['source']})")
    return os.path.abspath(path)


def run(args) -> int:
    spec = image_spec(args)
    options = {o for opt in args.options for o in opt.split(",") if o}
    unknown = options - {"case_insensitive", "ro"}
    if unknown:
        raise UsageError(f"unknown mount option(s): {', '.join(sorted(unknown))} "
                         "(known: case_insensitive)")
    if args.rw and spec.selector == "all" and not spec.by_name:
        raise UsageError("'all' mounts read-only; mount one image read-write")
    if args.rw and args.ref:
        raise UsageError("split WIMs mount read-only; 'wimfs join' them to edit")
    mountdir = _check_mountdir(args.mountdir)
    if not os.path.isfile(spec.path):
        raise MountError(f"{spec.path} is not a regular file")
    if not args.foreground:
        # (a bad selector or a bad WIM is found by the daemon, which reports it through
        # the ready pipe: the same one line and exit status, and one WIM open less)
        return _daemonize(args)
    ready_fd = int(os.environ.pop(READY_ENV, "-1"))
    try:
        return _serve(args, spec, mountdir, options, ready_fd)
    except WimfsError as exc:
        _tell(ready_fd, f"ERROR {exc.exit_code} {exc}")
        raise


def _tell(fd: int, msg: str) -> None:
    if fd >= 0:
        try:
            os.write(fd, (msg.replace("\n", " ") + "\n").encode("utf-8", "replace"))
            os.close(fd)
        except OSError:
            pass


def _new_staging() -> str:
    d = os.path.join(state_dir(), "staging", os.urandom(8).hex())
    os.makedirs(d, mode=0o700)
    return d


def _serve(args, spec: ImageSpec, mountdir: str, options: set[str], ready_fd: int) -> int:
    if not os.path.exists("/dev/fuse"):
        raise MountError("/dev/fuse is missing: load the fuse module or run with --device "
                         "/dev/fuse")
    # A read-only mount opens its image on a thread while this one imports pyfuse3 and
    # trio: reading and decompressing the metadata resource (libwim releases the GIL)
    # overlaps the imports, most of a cold mount's time.
    loader = None if args.rw else _ImageLoader(args, spec)
    try:
        from wimfs.fuse.mount import fuse_options, serve
        from wimfs.fuse.ops import WimOperations
    except ImportError as exc:
        if loader is not None:
            loader.close()
        raise MountError(f"FUSE support is not installed ({exc}); run scripts/setup") from None
    if args.rw:
        return _serve_rw(args, spec, mountdir, options, ready_fd)
    wim, all_images, indexes, images = loader.result()
    try:
        gc.freeze()   # what is loaded lives as long as the mount: keep it out of GC passes
        ops = WimOperations(wim, images, all_images=all_images,
                            case_insensitive="case_insensitive" in options,
                            threads=args.threads, mountpoint=mountdir, indexes=indexes)
        rec = {"wim": wim.path, "index": "all" if all_images else indexes[0],
               "mountdir": mountdir, "rw": False, "pid": os.getpid(), "staging": None,
               "started": time.time()}
        rec_path = mounts.record_path(mountdir)   # before mounting: never stat our own mount

        def ready() -> None:
            mounts.write_record(rec, rec_path)
            _tell(ready_fd, "READY")

        try:
            serve(ops, mountdir, fuse_options(f"wimfs:{wim.path}", args.allow_other),
                  on_ready=ready)
        finally:
            mounts.remove_record(mountdir, rec_path)
    finally:
        wim.close()
    return 0


def _serve_rw(args, spec: ImageSpec, mountdir: str, options: set[str], ready_fd: int) -> int:
    import trio

    from wimfs.fuse import control
    from wimfs.fuse.mount import fuse_options, serve
    from wimfs.fuse.rwops import RwOperations
    from wimfs.overlay import Overlay
    from wimfs.wim import Wim

    resume = bool(args.resume)
    staging = args.staging
    if staging is None:
        staging = _new_staging()
    elif not resume:
        os.makedirs(staging, mode=0o700, exist_ok=True)
        if os.path.exists(os.path.join(staging, "journal")):
            raise MountError(f"{staging} already holds an overlay; use 'wimfs remount'")
    with Wim(spec.path) as w:
        index = spec.resolve_one(w)
    try:
        overlay = Overlay(spec.path, index, staging, mountpoint=mountdir)
    except BaseException:
        if args.staging is None:      # ours and still empty: do not leave an orphan
            shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        replayed = overlay.start_journal(resume)
        if resume:
            log.info("replayed %d journal records", replayed)
        ops = RwOperations(overlay, case_insensitive="case_insensitive" in options,
                           threads=args.threads, mountpoint=mountdir)
        state = {"exit_mode": "keep"}
        rec = {"wim": overlay.wim_path, "index": overlay.index, "mountdir": mountdir,
               "rw": True, "pid": os.getpid(), "staging": staging, "started": time.time(),
               "options": sorted(options), "allow_other": bool(args.allow_other)}
        rec_path = mounts.record_path(mountdir)   # before mounting: never stat our own mount

        async def control_task(task_status=trio.TASK_STATUS_IGNORED):
            await control.serve(ops, mounts.control_path(staging), state, task_status)

        def ready() -> None:
            mounts.write_record(rec, rec_path)
            _tell(ready_fd, "READY")

        serve(ops, mountdir, fuse_options(f"wimfs:{overlay.wim_path}", args.allow_other,
                                          read_only=False),
              on_ready=ready, control=control_task)
    except BaseException:
        overlay.close()
        raise
    mode = state["exit_mode"]
    if mode in ("discard", "clean"):
        # Release the WIM and the record first: the waiting CLI is done then; removing
        # thousands of staging files may take a while longer.
        overlay.close()
        # Rename first (instant), so the staging path is gone when the CLI returns.
        trash = f"{staging}.removing"
        try:
            os.rename(staging, trash)
        except OSError:
            trash = staging
        mounts.remove_record(mountdir, rec_path)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        # Unmounted without commit or discard: keep the overlay for 'wimfs remount'.
        overlay.close()
        try:
            os.unlink(mounts.control_path(staging))
        except FileNotFoundError:
            pass
        rec["pid"] = -1
        mounts.write_record(rec, rec_path)
    return 0


class _ImageLoader:
    """Opens the WIM and (lazily) the image a read-only mount serves, on a thread."""

    def __init__(self, args, spec: ImageSpec) -> None:
        # (imported here, not on the thread: two threads importing the same modules
        # could see each other's half-initialised ones)
        import wimfs.image_tree  # noqa: F401
        import wimfs.wim  # noqa: F401

        self._out: tuple | None = None
        self._exc: BaseException | None = None
        self._thread = threading.Thread(target=self._load, args=(args, spec),
                                        name="wimfs-open", daemon=True)
        self._thread.start()

    def _load(self, args, spec: ImageSpec) -> None:
        from wimfs.wim import Wim

        wim = None
        try:
            wim = Wim(spec.path, cache_size=None if args.cache_size is None else
                      args.cache_size << 20, threads=args.threads)
            if args.ref:
                wim.add_ref_parts(args.ref)
            all_images = spec.selector == "all" and not spec.by_name
            indexes = spec.resolve(wim, allow_all=True)
            # Lazily loaded: directories are parsed when first used; with 'all', an
            # image is opened when its folder is entered.
            images = [] if all_images else [wim.image(indexes[0], ino_start=1, lazy=True)]
            self._out = (wim, all_images, indexes, images)
        except BaseException as exc:    # (raised again in the caller's thread)
            self._exc = exc
            if wim is not None:
                wim.close()

    def result(self) -> tuple:
        """(wim, all_images, indexes, images), or what opening them raised."""
        self._thread.join()
        if self._exc is not None:
            raise self._exc
        return self._out    # type: ignore[return-value]

    def close(self) -> None:
        try:
            self.result()[0].close()
        except BaseException:       # noqa: BLE001 - an error is already on its way
            pass


def _daemonize(args) -> int:
    argv = [sys.executable, "-m", "wimfs"]
    if args.debug:
        argv.append("--debug")
    argv += ["mount", "--foreground", args.image, args.mountdir]
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    if args.cache_size is not None:
        argv += ["--cache-size", str(args.cache_size)]
    if args.index is not None:
        argv += ["--index", str(args.index)]
    if args.name is not None:
        argv += ["--name", args.name]
    if args.allow_other:
        argv.append("--allow-other")
    if args.rw:
        argv.append("--rw")
    if args.staging:
        argv += ["--staging", args.staging]
    if args.resume:
        argv.append("--resume")
    for r in getattr(args, "ref", []) or []:
        argv += ["--ref", os.path.abspath(r)]
    for o in args.options:
        argv += ["-o", o]
    logdir = os.path.join(state_dir(), "log")
    os.makedirs(logdir, exist_ok=True)
    logpath = os.path.join(logdir, "mount.log")
    r, w = os.pipe()
    from wimfs import cli
    if cli.RUN_AS_PROGRAM and threading.active_count() == 1:
        # The wimfs program (one thread): the daemon is this process forked, so it
        # starts with the interpreter and modules already loaded, not a second Python.
        pid = _fork_daemon(args, logpath, r, w)
        wait = lambda: os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])  # noqa: E731
    else:
        # Called in process (a library, the DISM face in a test process) or with
        # threads: a fork would copy the caller's state and locks; start a new
        # interpreter instead.
        env = dict(os.environ, **{READY_ENV: str(w)})
        with open(logpath, "ab") as logf, open(os.devnull, "rb") as devnull:
            proc = subprocess.Popen(argv, stdin=devnull, stdout=logf, stderr=logf, env=env,
                                    pass_fds=(w,), start_new_session=True, close_fds=True)
        wait = lambda: proc.wait(timeout=10)  # noqa: E731
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        msg = pipe.readline().decode("utf-8", "replace").strip()
    if msg == "READY":
        return 0        # (the program then leaves without its teardown: cli.leave)
    if msg.startswith("ERROR "):
        _, code, text = msg.split(" ", 2)
        print(f"wimfs: error: {text}", file=sys.stderr)
        return int(code)
    rc = wait()
    print(f"wimfs: error: the mount daemon exited ({rc}) before the mount was ready; "
          f"see {logpath}", file=sys.stderr)
    return EXIT_MOUNT


def _fork_daemon(args, logpath: str, r: int, w: int) -> int:
    """Fork the mount daemon (`mount --foreground` with the ready pipe `w`) in a new
    session, its output going to `logpath`; return its pid. The child never returns."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    rc = 1
    try:
        os.close(r)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        logfd = os.open(logpath, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(devnull, 0)
        os.dup2(logfd, 1)
        os.dup2(logfd, 2)
        os.close(devnull)
        os.close(logfd)
        os.environ[READY_ENV] = str(w)
        args.foreground = True
        from wimfs.cli import run_guarded
        rc = run_guarded(lambda: run(args), debug=args.debug) or 0
    except BaseException:               # noqa: BLE001 - the child must end here
        pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc)


# -- unmount / commit ------------------------------------------------------------------


def _record_for(mountdir: str) -> dict:
    rec = mounts.read_record(mountdir)
    if rec is None:
        m = find_mount(mountdir)
        if m is not None and m["fstype"] == "fuse.wimfs":
            return {"mountdir": os.path.realpath(mountdir), "rw": False, "pid": None,
                    "wim": m["source"].removeprefix("wimfs:")}
        raise MountError(f"{mountdir} is not a wimfs mount")
    return rec


def _commit(rec: dict, args) -> dict:
    with progress.bar(args.quiet) as cb:
        def show(p: dict) -> None:    # the daemon's {"done", "total"} progress lines
            if cb is not None:
                cb(progress.ProgressEvent("committing", p.get("done", 0), p.get("total", 0)))

        return mounts.request(rec, {"cmd": "commit", "append": args.append, "name": args.name,
                                    "description": args.description, "check": args.check,
                                    "force": args.force}, on_progress=show)


def _check_commit_args(args) -> None:
    if args.append and not args.name:
        raise UsageError("--append needs --name NAME for the new image")
    if (args.name or args.description) and not args.append:
        raise UsageError("--name and --description name a new image: they need --append")


def run_commit(args) -> int:
    _check_commit_args(args)
    rec = _record_for(args.mountdir)
    if mounts.status_of(rec) != "ok":
        raise MountError(f"{args.mountdir}: the mount is not active "
                         f"({mounts.status_of(rec)}); try 'wimfs remount'")
    res = _commit(rec, args)
    if not args.quiet:
        print(f"committed to image {res['index']} of {rec['wim']} "
              f"({res['written_bytes']} bytes appended, {res['seconds']} s)")
    return 0


def run_unmount(args) -> int:
    _check_commit_args(args)
    path = os.path.abspath(args.mountdir)
    rec = _record_for(path)
    if rec.get("rw"):
        if args.commit == args.discard:
            raise UsageError(f"{path} is mounted read-write: unmount it with --commit or "
                             "--discard")
        status = mounts.status_of(rec)
        if status == "needs remount":
            raise MountError(f"{path}: the mount daemon is gone; 'wimfs remount' it first "
                             "(or 'wimfs cleanup --purge' to drop its changes)")
        if args.commit:
            _commit(rec, args)
        mounts.request(rec, {"cmd": "exit_mode",
                             "mode": "clean" if args.commit else "discard"})
    elif args.commit or args.discard:
        if args.commit:
            raise MountError(f"{path} is mounted read-only: nothing to commit")
    _fusermount(path, lazy=args.lazy or args.force)
    pid = rec.get("pid")
    if not mounts.wait_gone(path, pid if isinstance(pid, int) and pid > 0 else None):
        raise MountError(f"{path}: the daemon did not exit")
    return 0


def _fusermount(path: str, lazy: bool) -> None:
    m = find_mount(path)
    if m is None:
        return
    if m["fstype"] != "fuse.wimfs":
        raise MountError(f"{path} is not a wimfs mount ({m['fstype']})")
    cmd = ["fusermount3", "-u"] + (["-z"] if lazy else []) + [path]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        res = subprocess.run(["umount"] + (["-l"] if lazy else []) + [path],
                             capture_output=True, text=True)
    if res.returncode != 0:
        msg = (res.stderr or res.stdout).strip().splitlines()
        text = msg[-1] if msg else f"exit code {res.returncode}"
        if "busy" in text.lower():
            raise BusyError(f"{path} is busy (files are open on it); close them or use "
                            "--force")
        raise MountError(f"cannot unmount {path}: {text}")


# -- management ------------------------------------------------------------------------


def _describe(rec: dict) -> dict:
    st = mounts.status_of(rec)
    return {"mountdir": rec["mountdir"], "wim": rec.get("wim"), "index": rec.get("index"),
            "read_write": bool(rec.get("rw")), "status": st, "pid": rec.get("pid"),
            "staging": rec.get("staging"),
            "overlay_bytes": mounts.staging_size(rec.get("staging")) if rec.get("rw") else 0}


def run_mounts(args) -> int:
    rows = [_describe(r) for r in mounts.all_records()]
    known = {r["mountdir"] for r in rows}
    from wimfs.paths import mount_table

    for m in mount_table():      # wimfs mounts without a record (e.g. made by older versions)
        if m["fstype"] == "fuse.wimfs" and m["mountpoint"] not in known:
            rows.append({"mountdir": m["mountpoint"], "wim": m["source"].removeprefix("wimfs:"),
                         "index": None, "read_write": "ro" not in m["options"].split(","),
                         "status": "ok", "pid": None, "staging": None, "overlay_bytes": 0})
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not rows:
        print("No mounted images.")
    for r in rows:
        print(f"Mount Dir : {r['mountdir']}\nImage File : {r['wim']}\n"
              f"Image Index : {r['index']}\nMounted Read/Write : "
              f"{'Yes' if r['read_write'] else 'No'}\nStatus : {r['status']}\n"
              f"Overlay Size : {r['overlay_bytes']} bytes\n")
    return 0


def run_status(args) -> int:
    rec = _record_for(args.mountdir)
    if not rec.get("rw"):
        info = {"mountdir": rec["mountdir"], "wim": rec.get("wim"), "index": rec.get("index"),
                "read_write": False, "status": mounts.status_of(rec) if rec.get("pid")
                else "ok", "changes": []}
    else:
        st = mounts.status_of(rec)
        info = {"mountdir": rec["mountdir"], "wim": rec["wim"], "index": rec["index"],
                "read_write": True, "status": st,
                "overlay_bytes": mounts.staging_size(rec.get("staging"))}
        if st == "ok":
            res = mounts.request(rec, {"cmd": "status"})
            info["changes"] = res["changes"]
            info["open_for_write"] = res["open_for_write"]
        else:
            info["changes"] = None
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"{info['mountdir']}: image {info['index']} of {info['wim']}, "
          f"{'read-write' if info['read_write'] else 'read-only'}, {info['status']}")
    changes = info.get("changes") or []
    if info.get("changes") is None:
        print("  (daemon not running: remount to see the changes)")
    elif not changes:
        print("  no changes")
    for c in changes:
        extra = f" (from {c['old_path']})" if c.get("old_path") else ""
        size = f"  {c['size']} bytes" if args.diff and c["change"] != "deleted" else ""
        print(f"  {c['change']:<9} {c['path']}{extra}{size}")
    return 0


def run_remount(args) -> int:
    path = os.path.abspath(args.mountdir)
    rec = mounts.read_record(path)
    if rec is None or not rec.get("rw"):
        raise MountError(f"no read-write overlay is recorded for {path}")
    st = mounts.status_of(rec)
    if st == "ok":
        print(f"{path} is mounted and working; nothing to do")
        return 0
    if st == "invalid":
        raise MountError(f"{path}: the overlay cannot be recovered (WIM or staging missing)")
    # Clear a dead FUSE mount left by a killed daemon.
    if find_mount(path) is not None:
        subprocess.run(["fusermount3", "-uz", path], capture_output=True)
    os.makedirs(path, exist_ok=True)

    class A:  # the arguments of a mount
        pass

    a = A()
    a.image, a.mountdir, a.index, a.name = rec["wim"], path, rec["index"], None
    a.foreground, a.allow_other = False, rec.get("allow_other", False)
    a.cache_size, a.threads, a.options = args.cache_size, None, list(rec.get("options", []))
    a.rw, a.staging, a.resume, a.debug = True, rec["staging"], True, args.debug
    a.ref = []
    return _daemonize(a)


def run_cleanup(args) -> int:
    removed = 0
    for rec in mounts.all_records():
        st = mounts.status_of(rec)
        if st == "ok":
            continue
        mdir = rec["mountdir"]
        m = find_mount(mdir)
        if m is not None and m["fstype"] == "fuse.wimfs" and not mounts.mount_alive(mdir):
            subprocess.run(["fusermount3", "-uz", mdir], capture_output=True)
            print(f"removed dead mount {mdir}")
        if rec.get("rw") and st == "needs remount" and not args.purge:
            print(f"kept the overlay of {mdir} ({rec['staging']}); 'wimfs remount {mdir}' "
                  "brings it back, 'wimfs cleanup --purge' drops it")
            continue
        if rec.get("staging") and os.path.isdir(rec["staging"]):
            shutil.rmtree(rec["staging"], ignore_errors=True)
            print(f"purged the overlay of {mdir}")
        mounts.remove_record(mdir)
        removed += 1
    # Dead wimfs mounts without records.
    from wimfs.paths import mount_table

    for m in mount_table():
        if m["fstype"] == "fuse.wimfs" and not mounts.mount_alive(m["mountpoint"]):
            if mounts.read_record(m["mountpoint"]) is None:
                subprocess.run(["fusermount3", "-uz", m["mountpoint"]], capture_output=True)
                print(f"removed dead mount {m['mountpoint']}")
    # Staging of in-process servicing sessions whose process was killed (never resumable).
    from wimfs.overlay.paths import remove_dead_sessions

    for p in remove_dead_sessions(os.path.join(state_dir(), "sessions")):
        print(f"removed the staging of a killed servicing session {p}")
    # Orphaned staging directories (no record points at them).
    sdir = os.path.join(state_dir(), "staging")
    if os.path.isdir(sdir):
        used = {r.get("staging") for r in mounts.all_records()}
        for n in os.listdir(sdir):
            p = os.path.join(sdir, n)
            if p not in used:
                if args.purge:
                    shutil.rmtree(p, ignore_errors=True)
                    print(f"purged orphaned overlay {p}")
                else:
                    print(f"orphaned overlay kept: {p} (use --purge to remove)")
    return 0
