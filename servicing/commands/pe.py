"""`wimfs pe get|set TARGET` (DISM /Get-PESettings, /Set-ScratchSpace, /Set-TargetPath, and
mkwinpeimg's start script) and `wimfs pe media SOURCE OUT.iso` (MakeWinPEMedia /ISO,
BIOS and UEFI). Syntax and text only; the work is in servicing.features.winpe and
servicing.features.pe_media."""

from __future__ import annotations

from servicing.commands import print_json


def add_parser(sub) -> None:
    from servicing.options import add_common_arguments

    p = sub.add_parser("pe", help="Windows PE settings of a TARGET and bootable PE media")
    ps = p.add_subparsers(dest="pe_command", metavar="COMMAND", required=True)
    c = ps.add_parser("get", help="scratch space, target path, version, start command "
                                  "(DISM /Get-PESettings)")
    c.add_argument("target", metavar="TARGET")
    add_common_arguments(c, writes=False)
    c.set_defaults(func=run_get)
    c = ps.add_parser("set", help="DISM /Set-ScratchSpace, /Set-TargetPath; a start script")
    c.add_argument("target", metavar="TARGET")
    c.add_argument("--scratch-space", type=int, metavar="MB",
                   help="writable RAM-disk space: 32, 64, 128, 256 or 512")
    c.add_argument("--target-path", metavar="PATH",
                   help="the PE root when booted from a hard disk (e.g. X:\\)")
    c.add_argument("--start-script", metavar="FILE",
                   help="a .cmd PE runs at start, after startnet.cmd (winpeshl.ini)")
    add_common_arguments(c)
    c.set_defaults(func=run_set)
    c = ps.add_parser("media", help="a bootable BIOS+UEFI Windows PE ISO from a Windows "
                                    "installation medium or ADK media folder")
    c.add_argument("source", metavar="SOURCE", help="an ISO file or a folder")
    c.add_argument("iso", metavar="OUT.iso")
    c.add_argument("--boot-wim", metavar="PATH", help="use this boot.wim instead of "
                   "SOURCE's sources/boot.wim")
    c.add_argument("--overlay", metavar="DIR", help="add DIR's files to the PE image")
    c.add_argument("--start-script", metavar="FILE", help="a .cmd PE runs at start")
    c.add_argument("--label", default="WINPE", help="volume label (default WINPE)")
    add_common_arguments(c, writes=False)
    c.set_defaults(func=run_media)



def _print_settings(s) -> None:
    profiling = "-" if s.profiling is None else ("Enabled" if s.profiling else "Disabled")
    print(f"Windows PE version : {s.version or '-'}\nProfiling : {profiling}\n"
          f"Scratch space : {str(s.scratch_space) + ' MB' if s.scratch_space else '-'}\n"
          f"Target path : {s.target_path or '-'}")
    if s.launch_apps:
        print("Start (winpeshl.ini [LaunchApps]) :")
        for line in s.launch_apps:
            print(f"  {line}")
    else:
        print("Start : cmd /k startnet.cmd")
    print("startnet.cmd : " + ("; ".join(s.startnet) or "-"))


def run_get(args) -> int:
    from servicing.features.winpe import pe_settings
    from servicing.session import operation, options_from_args

    opts = options_from_args(args)
    with operation(args.target, opts, command=f"pe get {args.target}", write=False) as t:
        s = pe_settings(t)
    if opts.json:
        print_json(s.to_json())
    else:
        _print_settings(s)
    return 0


def run_set(args) -> int:
    from servicing.features.winpe import PESettingError, set_pe_settings
    from servicing.session import changes_json, operation, options_from_args

    if args.scratch_space is None and args.target_path is None and args.start_script is None:
        raise PESettingError("nothing to set: give --scratch-space, --target-path or "
                             "--start-script")
    opts = options_from_args(args)
    with operation(args.target, opts, command=f"pe set {args.target}", write=True) as t:
        s = set_pe_settings(t, scratch_space=args.scratch_space,
                            target_path=args.target_path, start_script=args.start_script)
    if opts.json:
        print_json(changes_json(t) | {"settings": s.to_json()})
    elif not opts.dry_run:
        _print_settings(s)
    return 0


def run_media(args) -> int:
    import os

    from servicing.errors import TargetPathError
    from servicing.features.pe_media import make_media
    from servicing.options import CommonOptions
    from servicing.session import options_from_args

    opts = options_from_args(args)
    if args.overlay is not None and not os.path.isdir(args.overlay):
        raise TargetPathError(f"overlay folder not found: {args.overlay}")
    edit = None
    if args.overlay or args.start_script:
        sub = CommonOptions(windir=opts.windir, log_path=opts.log_path,
                            log_level=opts.log_level)

        def edit(spec: str) -> None:
            _edit_boot_wim(spec, sub, args.overlay, args.start_script)

    r = make_media(args.source, args.iso, boot_wim=args.boot_wim, edit=edit,
                   label=args.label)
    if opts.json:
        print_json(r.to_json())
    else:
        extra = f" (image {r.boot_image} edited)" if r.boot_image else ""
        print(f"{r.iso}: bootable Windows PE ISO (BIOS and UEFI), {r.files} files, "
              f"boot.wim from {r.boot_wim}{extra}")
    return 0


def _edit_boot_wim(spec: str, opts, overlay: str | None, script: str | None) -> None:
    from servicing.features.winpe import add_overlay, install_start_script, require_winpe
    from servicing.session import operation

    with operation(spec, opts, command="pe media: edit boot.wim", write=True) as t:
        require_winpe(t)
        if overlay:
            add_overlay(t, overlay)
        if script:
            install_start_script(t, script)
