"""DISM's package and feature commands (/Get-Packages, /Get-PackageInfo, /Add-Package,
/Remove-Package, /Get-Features, /Get-FeatureInfo, /Enable-Feature, /Disable-Feature) on
/Image:TARGET over `wimfs package ...` and `wimfs feature ...` (dism-reference.md 1.4,
3.3). Adding, removing, enabling and disabling happen at the image's first boot."""

from __future__ import annotations

from servicing.commands.package import info_lines
from servicing.dism.codes import NOT_SUPPORTED, DismError
from servicing.dism.commands import Call, Command, Kind, native_json, register
from servicing.dism.grammar import bad_argument
from servicing.dism.imagecmds import UNDEFINED, servicing_options

F, V, M = Kind.FLAG, Kind.VALUE, Kind.MULTI


def _time(t: str | None) -> str:
    return t.replace("T", " ").rstrip("Z")[:16] if t else UNDEFINED


def get_packages(call: Call):
    rows = native_json(call, ["package", "list", call.line.image] + servicing_options(call))
    call.console.lines(["Packages listing:", ""])
    call.console.records([[("Package Identity", r["identity"]), ("State", r["state"]),
                           ("Release Type", r["release_type"] or UNDEFINED),
                           ("Install Time", _time(r["install_time"]))] for r in rows])
    return rows


def _names(call: Call, option: str, spelled: str) -> list[str]:
    values = call.opts.get(option)
    if not values:
        raise bad_argument(f"The /{spelled} option is required for "
                           f"{call.line.command.spelled.rstrip(':=')}.")
    return list(values)                       # type: ignore[arg-type]


def get_package_info(call: Call):
    name = call.get("packagename", "packagepath")
    if name is None:
        raise bad_argument("The /PackageName or /PackagePath option is required for "
                           "/Get-PackageInfo.")
    doc = native_json(call, ["package", "info", call.line.image, name] +
                      servicing_options(call))
    call.console.lines(["Package information:", ""] + info_lines(doc, UNDEFINED))
    return doc


def _mutating(call: Call, argv: list[str], noun: str, verb: str):
    doc = native_json(call, argv + servicing_options(call))
    items = doc.get("packages") or doc.get("features") or []
    for n, r in enumerate(items, 1):
        label = r.get("identity") or r.get("name")
        state = r.get("message") or r.get("state")
        call.console.lines([f"Processing {n} of {len(items)} - {verb} {noun} {label}: "
                            f"{state}"])
    return doc


def add_package(call: Call):
    argv = ["package", "add", call.line.image, *_names(call, "packagepath", "PackagePath")]
    argv += ["--ignore-check"] if call.flag("ignorecheck") else []
    argv += ["--prevent-pending"] if call.flag("preventpending") else []
    return _mutating(call, argv, "package", "Adding")


def remove_package(call: Call):
    names = list(call.opts.get("packagename") or [])
    if call.opts.get("packagepath"):
        raise DismError("/Remove-Package /PackagePath is not supported: give the package "
                        "identity with /PackageName (see /Get-Packages).", NOT_SUPPORTED)
    if not names:
        raise bad_argument("The /PackageName option is required for /Remove-Package.")
    return _mutating(call, ["package", "remove", call.line.image, *names], "package",
                     "Removing")


def get_features(call: Call):
    argv = ["feature", "list", call.line.image]
    pkg = call.get("packagename")
    argv += ["--package", pkg] if pkg else []
    rows = native_json(call, argv + servicing_options(call))
    for package in dict.fromkeys(r["package"] for r in rows):
        call.console.lines([f"Features listing for package : {package}", ""])
        call.console.records([[("Feature Name", r["name"]), ("State", r["state"])]
                              for r in rows if r["package"] == package])
    return rows


def get_feature_info(call: Call):
    argv = ["feature", "info", call.line.image, call.need("featurename")]
    pkg = call.get("packagename")
    argv += ["--package", pkg] if pkg else []
    f = native_json(call, argv + servicing_options(call))
    call.console.lines(["Feature Information:", "", f"Feature Name : {f['name']}",
                        f"Display Name : {f['display_name'] or UNDEFINED}",
                        f"Description : {f['description'] or UNDEFINED}",
                        f"Restart Required : {f['restart'].capitalize() or UNDEFINED}",
                        f"State : {f['state']}", "", "Custom Properties:", "",
                        "(No custom properties found)", ""])
    return f


def _feature_argv(call: Call, verb: str) -> list[str]:
    argv = ["feature", verb, call.line.image, *_names(call, "featurename", "FeatureName")]
    pkg = call.get("packagename")
    return argv + (["--package", pkg] if pkg else [])


def enable_feature(call: Call):
    argv = _feature_argv(call, "enable")
    argv += ["--all"] if call.flag("all") else []
    sources = call.opts.get("source") or []
    argv += ["--source", ";".join(sources)] if sources else []   # type: ignore[arg-type]
    argv += ["--limit-access"] if call.flag("limitaccess") else []
    return _mutating(call, argv, "feature", "Enabling")


def disable_feature(call: Call):
    argv = _feature_argv(call, "disable") + (["--remove"] if call.flag("remove") else [])
    return _mutating(call, argv, "feature", "Disabling")


for names, handler, options, usage, summary in (
    (("Get-Packages",), get_packages, {},
     "/Image:<target> /Get-Packages [/Format:{Table|List}]",
     "Lists the packages of the image and their state."),
    (("Get-PackageInfo",), get_package_info, {"packagename": V, "packagepath": V},
     "/Image:<target> /Get-PackageInfo {/PackageName:<identity> | /PackagePath:<file.cab>}",
     "Shows a package of the image or a package file."),
    (("Add-Package",), add_package, {"packagepath": M, "ignorecheck": F,
                                     "preventpending": F},
     "/Image:<target> /Add-Package /PackagePath:{<file.cab> | <file.msu> | <folder>} ... "
     "[/IgnoreCheck] [/PreventPending]",
     "Copies packages into the image; Windows installs them at its first boot."),
    (("Remove-Package",), remove_package, {"packagename": M, "packagepath": M},
     "/Image:<target> /Remove-Package /PackageName:<identity> ...",
     "Takes back a package added for the first boot, or removes one at first boot."),
    (("Get-Features",), get_features, {"packagename": V, "packagepath": Kind.UNSUPPORTED},
     "/Image:<target> /Get-Features [/PackageName:<identity>] [/Format:{Table|List}]",
     "Lists the features and their state."),
    (("Get-FeatureInfo",), get_feature_info, {"featurename": V, "packagename": V,
                                              "packagepath": Kind.UNSUPPORTED},
     "/Image:<target> /Get-FeatureInfo /FeatureName:<name> [/PackageName:<identity>]",
     "Shows one feature."),
    (("Enable-Feature",), enable_feature, {"featurename": M, "packagename": V, "all": F,
                                           "source": M, "limitaccess": F},
     "/Image:<target> /Enable-Feature /FeatureName:<name> ... [/PackageName:<identity>] "
     "[/All] [/Source:<path>] [/LimitAccess]",
     "Enables features at the image's first boot."),
    (("Disable-Feature",), disable_feature, {"featurename": M, "packagename": V,
                                             "remove": F},
     "/Image:<target> /Disable-Feature /FeatureName:<name> ... [/PackageName:<identity>] "
     "[/Remove]", "Disables features at the image's first boot."),
):
    register(Command(names, handler, options, usage, summary, image=True))
