"""DISM's commands on an offline image (/Image:TARGET, a Windows tree or IMAGE.wim:N,
mount-free) that the servicing foundation provides, over the native servicing commands."""

from __future__ import annotations

from servicing.dism.commands import Call, native_json

UNDEFINED = "<undefined>"


def servicing_options(call: Call) -> list[str]:
    """DISM's global options as the native servicing options (the common servicing log,
    /WinDir)."""
    g = call.line.globals
    argv = []
    if isinstance(g.get("windir"), str):
        argv += ["--windir", g["windir"]]
    argv += ["--log-path", call.console.log_path]
    if isinstance(g.get("loglevel"), str):
        argv += ["--log-level", g["loglevel"]]
    return argv


def image_info(call: Call) -> dict:
    """`wimfs image-info TARGET --json` of /Image (its version heads DISM's output)."""
    return native_json(call, ["image-info", call.line.image] + servicing_options(call))
