"""DISM's driver commands (/Get-Drivers, /Get-DriverInfo, /Add-Driver, /Remove-Driver) on
/Image:TARGET over `wimfs driver list|info|add|remove` (dism-reference.md 1.3, 3.3)."""

from __future__ import annotations

from servicing.dism.commands import Call, Command, Kind, native_json, register
from servicing.dism.grammar import bad_argument
from servicing.dism.imagecmds import UNDEFINED, servicing_options

F, M = Kind.FLAG, Kind.MULTI


def _yes(flag) -> str:
    return UNDEFINED if flag is None else ("Yes" if flag else "No")


def driver_record(e: dict) -> list[tuple[str, object]]:
    return [("Published Name", e["published_name"]),
            ("Original File Name", e["original_name"]), ("Inbox", _yes(e["inbox"])),
            ("Class Name", e["class_name"] or UNDEFINED),
            ("Provider Name", e["provider"] or UNDEFINED), ("Date", e["date"] or UNDEFINED),
            ("Version", e["version"] or UNDEFINED)]


def get_drivers(call: Call):
    argv = ["driver", "list", call.line.image] + (["--all"] if call.flag("all") else [])
    rows = native_json(call, argv + servicing_options(call))
    call.console.lines(["Obtaining list of 3rd party drivers from the driver store...", "",
                        "Driver packages listing:", ""])
    call.console.records([driver_record(r) for r in rows])
    return rows


def _drivers(call: Call) -> list[str]:
    names = call.opts.get("driver")
    if not names:
        raise bad_argument(f"The /Driver option is required for "
                           f"{call.line.command.spelled.rstrip(':=')}.")
    return list(names)                       # type: ignore[arg-type]


def _info_lines(e: dict) -> list[str]:
    lines = [f"Published Name : {e['published_name']}",
             f"Driver Store Path : {e['store'] or UNDEFINED}",
             f"Class Name : {e['class_name'] or UNDEFINED}",
             f"Class GUID : {e['class_guid'] or UNDEFINED}", f"Date : {e['date']}",
             f"Version : {e['version']}", f"Boot Critical : {_yes(e['boot_critical'])}", ""]
    for arch in dict.fromkeys(h["architecture"] for h in e["hardware"]):
        lines += [f"Drivers for architecture : {arch}", ""]
        for h in (h for h in e["hardware"] if h["architecture"] == arch):
            lines += [f"    Manufacturer : {h['manufacturer']}",
                      f"    Description : {h['description']}",
                      f"    Architecture : {h['architecture']}",
                      f"    Hardware ID : {h['hardware_id']}",
                      f"    Service Name : {h['service'] or UNDEFINED}",
                      f"    Compatible IDs : {', '.join(h['compatible_ids'])}",
                      f"    Exclude IDs : {', '.join(h['exclude_ids'])}", ""]
    return lines


def get_driver_info(call: Call):
    docs = []
    call.console.lines(["Driver package information:", ""])
    for name in _drivers(call):
        doc = native_json(call, ["driver", "info", call.line.image, name] +
                          servicing_options(call))
        call.console.lines(_info_lines(doc))
        docs.append(doc)
    return docs if len(docs) > 1 else docs[0]


def add_driver(call: Call):
    argv = ["driver", "add", call.line.image, *_drivers(call)]
    argv += ["--recurse"] if call.flag("recurse") else []
    argv += ["--force-unsigned"] if call.flag("forceunsigned") else []
    doc = native_json(call, argv + servicing_options(call))
    results = [r for r in doc["drivers"] if r["status"] != "skipped"]
    call.console.lines(["Searching for driver package(s) to install...",
                        f"Found {len(results)} driver package(s) to install."])
    for n, r in enumerate(results, 1):
        call.console.lines([f"Installing {n} of {len(results)} - {r['source']}: The driver "
                            "package was successfully installed."])
    return doc


def remove_driver(call: Call):
    names = _drivers(call)
    doc = native_json(call, ["driver", "remove", call.line.image, *names] +
                      servicing_options(call))
    for n, name in enumerate(doc["removed"], 1):
        call.console.lines([f"Removing {n} of {len(doc['removed'])} - {name}: The driver "
                            "package was successfully removed."])
    return doc


for names, handler, options, usage, summary in (
    (("Get-Drivers",), get_drivers, {"all": F},
     "/Image:<target> /Get-Drivers [/All] [/Format:{Table|List}]",
     "Lists the third-party driver packages (with /All: also the inbox ones)."),
    (("Get-DriverInfo",), get_driver_info, {"driver": M},
     "/Image:<target> /Get-DriverInfo /Driver:{oemN.inf | <file.inf>} ...",
     "Shows a driver package and its hardware entries."),
    (("Add-Driver",), add_driver, {"driver": M, "recurse": F, "forceunsigned": F},
     "/Image:<target> /Add-Driver /Driver:{<file.inf> | <folder>} ... [/Recurse] "
     "[/ForceUnsigned]", "Adds driver packages to the image."),
    (("Remove-Driver",), remove_driver, {"driver": M},
     "/Image:<target> /Remove-Driver /Driver:oemN.inf ...",
     "Removes third-party driver packages from the image."),
):
    register(Command(names, handler, options, usage, summary, image=True))
