"""`wimfs mount` and `wimfs unmount`."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

from wimfs.errors import EXIT_MOUNT, BusyError, MountError, PathNotFoundError, WimfsError
from wimfs.paths import find_mount, state_dir

log = logging.getLogger(__name__)

READY_ENV = "WIMFS_READY_FD"


def _check_mountdir(path: str) -> str:
    if not os.path.exists(path):
        raise PathNotFoundError(f"mount directory {path} does not exist")
    if not os.path.isdir(path):
        raise MountError(f"{path} is not a directory")
    if os.path.ismount(path) and (m := find_mount(path)) and m["fstype"].startswith("fuse"):
        raise BusyError(f"{path} is already a mount point ({m['fstype']} of {m['source']})")
    return os.path.abspath(path)


def run(args) -> int:
    mountdir = _check_mountdir(args.mountdir)
    if not os.path.isfile(args.image):
        if os.path.exists(args.image):
            raise MountError(f"{args.image} is not a regular file")
        raise PathNotFoundError(f"{args.image}: no such file")
    options = {o for opt in args.options for o in opt.split(",") if o}
    unknown = options - {"case_insensitive", "ro"}
    if unknown:
        raise MountError(f"unknown mount option(s): {', '.join(sorted(unknown))}")
    if not args.foreground:
        return _daemonize(args)
    ready_fd = int(os.environ.pop(READY_ENV, "-1"))
    try:
        return _serve(args, mountdir, options, ready_fd)
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


def _serve(args, mountdir: str, options: set[str], ready_fd: int) -> int:
    if not os.path.exists("/dev/fuse"):
        raise MountError("/dev/fuse is missing: load the fuse module or run with --device "
                         "/dev/fuse")
    try:
        from wimfs.fuse.mount import fuse_options, serve
        from wimfs.fuse.ops import WimOperations
    except ImportError as exc:
        raise MountError(f"FUSE support is not installed ({exc}); run scripts/setup") from None
    from wimfs.wim import Wim

    wim = Wim(args.image, cache_size=args.cache_size << 20, threads=args.threads)
    try:
        all_images = args.index == "all"
        if all_images:
            images, next_ino = [], 2
            for i in range(1, wim.image_count + 1):
                img = wim.image(i, ino_start=next_ino)
                next_ino += len(img.inodes)
                images.append(img)
        else:
            idx = wim.resolve_image(args.index, args.name)
            images = [wim.image(idx, ino_start=1)]
        ops = WimOperations(wim, images, all_images=all_images,
                            case_insensitive="case_insensitive" in options,
                            threads=args.threads, mountpoint=mountdir)
        serve(ops, mountdir, fuse_options(f"wimfs:{wim.path}", args.allow_other),
              on_ready=lambda: _tell(ready_fd, "READY"))
    finally:
        wim.close()
    return 0


def _daemonize(args) -> int:
    argv = [sys.executable, "-m", "wimfs"]
    if args.debug:
        argv.append("--debug")
    argv += ["mount", "--foreground", args.image, args.mountdir,
             "--cache-size", str(args.cache_size), "--threads", str(args.threads)]
    if args.index is not None:
        argv += ["--index", str(args.index)]
    if args.name is not None:
        argv += ["--name", args.name]
    if args.allow_other:
        argv.append("--allow-other")
    for o in args.options:
        argv += ["-o", o]
    logdir = os.path.join(state_dir(), "log")
    os.makedirs(logdir, exist_ok=True)
    logpath = os.path.join(logdir, "mount.log")
    r, w = os.pipe()
    env = dict(os.environ, **{READY_ENV: str(w)})
    with open(logpath, "ab") as logf, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(argv, stdin=devnull, stdout=logf, stderr=logf, env=env,
                                pass_fds=(w,), start_new_session=True, close_fds=True)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        msg = pipe.readline().decode("utf-8", "replace").strip()
    if msg == "READY":
        return 0
    if msg.startswith("ERROR "):
        _, code, text = msg.split(" ", 2)
        print(f"wimfs: error: {text}", file=sys.stderr)
        return int(code)
    rc = proc.wait(timeout=10)
    print(f"wimfs: error: the mount daemon exited ({rc}) before the mount was ready; "
          f"see {logpath}", file=sys.stderr)
    return EXIT_MOUNT


def run_unmount(args) -> int:
    path = os.path.abspath(args.mountdir)
    m = find_mount(path)
    if m is None:
        raise MountError(f"{path} is not mounted")
    if m["fstype"] != "fuse.wimfs":
        raise MountError(f"{path} is not a wimfs mount ({m['fstype']})")
    cmd = ["fusermount3", "-u"] + (["-z"] if args.lazy else []) + [path]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        res = subprocess.run(["umount"] + (["-l"] if args.lazy else []) + [path],
                             capture_output=True, text=True)
    if res.returncode != 0:
        msg = (res.stderr or res.stdout).strip().splitlines()
        text = msg[-1] if msg else f"exit code {res.returncode}"
        if "busy" in text.lower():
            raise BusyError(f"{path} is busy (files are open on it); close them or use --lazy")
        raise MountError(f"cannot unmount {path}: {text}")
    for _ in range(100):
        if find_mount(path) is None:
            break
        time.sleep(0.05)
    return 0
