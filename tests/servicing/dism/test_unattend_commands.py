"""DISM's /Apply-Unattend:FILE on /Image:TARGET (a Windows tree as a directory and as
IMAGE.wim:1) over `wimfs unattend apply`: the record equals the native --json (less the
change list's timestamps), the registry value lands (hivexget), DISM's codes."""

from __future__ import annotations

import json

from tests.servicing.dism.conftest import dism
from tests.servicing.drivers_helpers import hivexget

OK = "The operation completed successfully.\n"
NS = "urn:schemas-microsoft-com:unattend"
ANSWER = (f'<?xml version="1.0"?>\n<unattend xmlns="{NS}"><settings pass="offlineServicing">'
          '<component name="Microsoft-Windows-LUA-Settings" processorArchitecture="amd64" '
          'publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">'
          '<EnableLUA>false</EnableLUA></component></settings>'
          '<settings pass="offlineServicing"><component name="Microsoft-Windows-Shell-Setup" '
          'processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" '
          'language="neutral" versionScope="nonSxS"><ComputerName>PC1</ComputerName>'
          '</component></settings></unattend>\n')


def test_apply_unattend(target, tmp_path):
    path = tmp_path / "answer.xml"
    path.write_text(ANSWER)
    rc, out = dism(f"/Image:{target.spec}", f"/Apply-Unattend:{path}")
    assert rc == 0, out
    assert f"Applying unattend file {path} to the image...\n" in out and out.endswith(OK)
    assert "Not applied (line 2): Microsoft-Windows-Shell-Setup ComputerName\n" in out
    software = target.tree() / "Windows/System32/config/SOFTWARE"
    assert hivexget(software, "\\Microsoft\\Windows\\CurrentVersion\\Policies\\System",
                    "EnableLUA") == "0"
    rc, out = dism(f"/Image:{target.spec}", f"/Apply-Unattend:{path}", "--json")
    doc = json.loads(out)
    assert [(i["component"], i["status"]) for i in doc["items"]] == [
        ("Microsoft-Windows-LUA-Settings", "applied"),
        ("Microsoft-Windows-Shell-Setup", "not applied")]


def test_apply_unattend_errors(target, tmp_path):
    rc, out = dism(f"/Image:{target.spec}", "/Apply-Unattend")
    assert rc == 87 and "requires an answer file" in out
    bad = tmp_path / "bad.xml"
    bad.write_text('<unattend xmlns="urn:example"/>')
    rc, out = dism(f"/Image:{target.spec}", f"/Apply-Unattend:{bad}")
    assert rc != 0 and "\nError: " in out and "namespace" in out and "Traceback" not in out
