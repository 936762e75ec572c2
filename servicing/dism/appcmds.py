"""DISM's application servicing commands (/Get-Apps, /Get-AppInfo, /Get-AppPatches,
/Get-AppPatchInfo, /Check-AppPatch) on /Image:TARGET over `wimfs app ...`
(dism-reference.md 1.9, 2.4, 3.3)."""

from __future__ import annotations

from servicing.commands.app import patch_record, product_record
from servicing.dism.commands import Call, Command, Kind, native_json, register
from servicing.dism.imagecmds import servicing_options

V, M = Kind.VALUE, Kind.MULTI


def _argv(call: Call, command: str, **options: str) -> list[str]:
    argv = ["app", command, call.line.image]
    for name, flag in options.items():
        value = call.get(name)
        if value is not None:
            argv += [flag, value]
    return argv + servicing_options(call)


def get_apps(call: Call):
    rows = native_json(call, _argv(call, "list"))
    call.console.records([[("Product Code", r["product_code"]), ("Product Name", r["name"])]
                          for r in rows])
    return rows


def get_app_info(call: Call):
    rows = native_json(call, _argv(call, "info", productcode="--product-code"))
    call.console.records([product_record(r) for r in rows], table_ok=False)
    return rows


def get_app_patches(call: Call):
    rows = native_json(call, _argv(call, "patches", productcode="--product-code"))
    call.console.records([patch_record(r, False) for r in rows])
    return rows


def get_app_patch_info(call: Call):
    rows = native_json(call, _argv(call, "patch-info", patchcode="--patch-code",
                                   productcode="--product-code"))
    call.console.records([patch_record(r, True) for r in rows], table_ok=False)
    return rows


def check_app_patch(call: Call):
    """DISM shows the patches that apply (dism-reference.md 2.4.4: "displays information
    only if the MSP patches apply"); --json has every (patch, product) record."""
    paths = call.opts.get("patchlocation")
    if not paths:
        call.need("patchlocation")
    rows = native_json(call, ["app", "check-patch", call.line.image, *paths] +
                       servicing_options(call))
    call.console.records([[("Patch Code", r["patch_code"]), ("Product Code", r["product_code"]),
                           ("Patch Name", r["patch_name"])]
                          for r in rows if r["applicable"]])
    return rows


for names, handler, options, usage, summary in (
    (("Get-Apps",), get_apps, {}, "/Image:<target> /Get-Apps",
     "Lists the Windows Installer applications installed in the image."),
    (("Get-AppInfo",), get_app_info, {"productcode": V},
     "/Image:<target> /Get-AppInfo [/ProductCode:{GUID}]",
     "Shows the details of the Windows Installer applications (or of one)."),
    (("Get-AppPatches",), get_app_patches, {"productcode": V},
     "/Image:<target> /Get-AppPatches [/ProductCode:{GUID}]",
     "Lists the Windows Installer patches installed in the image."),
    (("Get-AppPatchInfo",), get_app_patch_info, {"patchcode": V, "productcode": V},
     "/Image:<target> /Get-AppPatchInfo [/PatchCode:{GUID}] [/ProductCode:{GUID}]",
     "Shows the details of installed Windows Installer patches."),
    (("Check-AppPatch",), check_app_patch, {"patchlocation": M},
     "/Image:<target> /Check-AppPatch /PatchLocation:<file.msp> ...",
     "Shows which installed applications the .msp patches apply to."),
):
    register(Command(names, handler, options, usage, summary, image=True))
