"""The servicing flow end to end: mount a Windows image read-write, change its registry
through the mount with `wimfs reg`, commit; the WIM's XML WINDOWS element follows the
hives (as DISM updates it), wimlib reads the edited hive back."""

from __future__ import annotations

import subprocess
import sys

from lxml import etree

from tests.helpers.wimlib import wimlib_apply, wimlib_capture, wimlib_verify, wimlib_xml
from tests.image.test_windows_xml import _windows_tree


def _edition(wim) -> str | None:
    root = etree.fromstring(wimlib_xml(wim).encode())
    return root.findtext("IMAGE/WINDOWS/EDITIONID")


def test_registry_edit_through_mount_updates_xml(rw_factory, tmp_path):
    src = _windows_tree(tmp_path / "src")
    wim = tmp_path / "w.wim"
    wimlib_capture(src, wim, name="W", compress="LZX")
    assert _edition(wim) == "Professional"
    m = rw_factory(wim)
    key = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"
    r = subprocess.run([sys.executable, "-m", "wimfs", "reg", str(m.mnt), "add", key,
                        "/v", "EditionID", "/t", "REG_SZ", "/d", "Enterprise", "/f"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m.unmount("--commit")
    assert wimlib_verify(wim).returncode == 0
    assert _edition(wim) == "Enterprise"
    out = tmp_path / "apply"
    out.mkdir()
    wimlib_apply(wim, 1, out)
    got = subprocess.run(["hivexget", str(out / "Windows/System32/config/SOFTWARE"),
                          r"\Microsoft\Windows NT\CurrentVersion", "EditionID"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert got == "Enterprise"
