"""DISM's driver commands on /Image:TARGET (a Windows tree as a directory and as
IMAGE.wim:1): DISM's labels (dism-reference.md 1.3, 3.2, 3.3), records equal to
`wimfs driver ... --json`, DISM's codes."""

from __future__ import annotations

import json

from tests.servicing.dism.conftest import dism, native_json
from tests.servicing.drivers_helpers import stamp_viostor

OK = "The operation completed successfully.\n"
LABELS = ["Published Name", "Original File Name", "Inbox", "Class Name", "Provider Name",
          "Date", "Version"]


def test_driver_commands(target, tmp_path):
    inf = stamp_viostor(tmp_path / "viostor", "amd64")
    img = f"/Image:{target.spec}"
    rc, out = dism(img, "/Add-Driver", f"/Driver:{inf}")
    assert rc == 50 and "\nError: 50\n\n" in out and "unsigned" in out   # refused
    rc, out = dism(img, "/Add-Driver", f"/Driver:{inf}", "/ForceUnsigned")
    assert rc == 0, out
    assert "Found 1 driver package(s) to install.\n" in out and out.endswith(OK)
    listed = native_json("driver", "list", target.spec)
    [pub] = [d["published_name"] for d in listed]
    rc, out = dism(img, "/Get-Drivers")
    assert rc == 0
    text = out.split("Image Version: 10.0.16299.125\n\n", 1)[1]
    d = listed[0]
    assert text == ("Obtaining list of 3rd party drivers from the driver store...\n\n"
                    "Driver packages listing:\n\n"
                    f"Published Name : {pub}\nOriginal File Name : viostor.inf\nInbox : No\n"
                    f"Class Name : SCSIAdapter\nProvider Name : {d['provider']}\n"
                    f"Date : {d['date']}\nVersion : {d['version']}\n\n" + OK)
    assert json.loads(dism(img, "/Get-Drivers", "--json")[1]) == listed
    assert json.loads(dism(img, "/Get-Drivers", "/All", "--json")[1]) == \
        native_json("driver", "list", target.spec, "--all")
    rc, out = dism(img, "/Format:Table", "/Get-Drivers")
    header = [ln for ln in out.splitlines() if ln.startswith("Published Name")]
    assert [c.strip() for c in header[0].split(" | ")] == LABELS
    rc, out = dism(img, "/Get-DriverInfo", f"/Driver:{pub}")
    assert rc == 0 and "    Service Name : viostor\n" in out
    assert "    Hardware ID : PCI\\VEN_1AF4&DEV_1001" in out
    assert json.loads(dism(img, "/Get-DriverInfo", f"/Driver:{pub}", "--json")[1]) == \
        native_json("driver", "info", target.spec, pub)
    rc, out = dism(img, "/Remove-Driver", "/Driver:oem999.inf")
    assert rc != 0 and "\nError: " in out and "Traceback" not in out
    rc, out = dism(img, "/Remove-Driver", f"/Driver:{pub}")
    assert rc == 0 and f"Removing 1 of 1 - {pub}: " in out
    assert native_json("driver", "list", target.spec) == []


def test_driver_option_errors(target):
    rc, out = dism(f"/Image:{target.spec}", "/Get-DriverInfo")
    assert rc == 87 and "/Driver option is required" in out
    rc, out = dism("/Online", "/Get-Drivers")
    assert rc == 50 and "\nError: 50\n\n" in out
    rc, out = dism(f"/Image:{target.spec}", "/Add-Driver", "/Driver:x.inf", "/Recurse:yes")
    assert rc == 87 and "does not take an argument" in out
