"""Every built DISM command in DISM's spellings (Win7 `*-Wim` and 8+ `*-Image`) against
wimlib-made WIMs and real FUSE mounts: exit status, DISM's labels and frame exactly as
dism-reference.md gives them, the records equal to the native command's --json, and
the effect checked with wimlib-imagex."""

from __future__ import annotations

import os

import pytest

from tests.helpers import wimlib_apply, wimlib_info
from tests.servicing.dism.conftest import dism, native_json

BANNER = "\nDeployment Image Servicing and Management tool\nVersion: "
OK = "The operation completed successfully.\n"


def body(out: str) -> str:
    """The text after the banner's two lines and blank line (dism-reference.md 3.1)."""
    assert out.startswith(BANNER), out
    return out.split("\n", 4)[4]


def commas(n: int) -> str:
    s = str(n)
    groups = []
    while s:
        groups.insert(0, s[-3:])
        s = s[:-3]
    return ",".join(groups)


@pytest.mark.parametrize("spelling", [
    ["/Get-WimInfo", "/WimFile:{w}"], ["/Get-ImageInfo", "/ImageFile:{w}"],
    ["/get-imageinfo", "-imagefile:{w}"], ["/GET-WIMINFO", "/WIMFILE={w}"]])
def test_get_wiminfo_lists_every_image(wim2, spelling):
    rc, out = dism(*[a.format(w=wim2) for a in spelling])
    assert rc == 0
    info = wimlib_info(wim2)["images"]
    expected = f"Details for image : {wim2}\n\n" + "".join(
        f"Index : {im['index']}\nName : {im['name']}\nDescription : {im['description']}\n"
        f"Size : {commas(im['total_bytes'])} bytes\n\n" for im in info) + OK
    assert body(out) == expected


@pytest.mark.parametrize("sel", ["/Index:2", "/Name:Second"])
def test_get_imageinfo_one_image_has_the_detail_labels(wim2, sel):
    rc, out = dism("/Get-ImageInfo", f"/ImageFile:{wim2}", sel)
    assert rc == 0
    labels = [ln.split(" : ")[0].rstrip(" :") for ln in body(out).splitlines()
              if " :" in ln]
    # anchors.md 2.3: the list fields, then the detail fields in DISM's order.
    assert labels == ["Details for image", "Index", "Name", "Description", "Size",
                      "WIM Bootable", "Architecture", "Hal", "Version", "ServicePack Build",
                      "ServicePack Level", "Edition", "Installation", "ProductType",
                      "ProductSuite", "System Root", "Directories", "Files", "Created",
                      "Modified", "Languages"]
    im = wimlib_info(wim2)["images"][1]
    text = body(out)
    assert f"Directories : {im['dir_count']}\n" in text
    assert f"Files : {im['file_count']}\n" in text
    assert "WIM Bootable : No\n" in text and text.endswith(OK)


def test_get_wiminfo_json_equals_native_info_json(wim2):
    rc, out = dism("/Get-WimInfo", f"/WimFile:{wim2}", "--json")
    assert rc == 0
    import json
    assert json.loads(out) == native_json("info", wim2)
    rc, out = dism("/Get-ImageInfo", f"/ImageFile:{wim2}", "/Index:2", "--json")
    assert json.loads(out) == native_json("info", wim2, "--index", "2")


def test_format_table(wim2):
    rc, out = dism("/Format:Table", "/Get-ImageInfo", f"/ImageFile:{wim2}")
    assert rc == 0
    info = wimlib_info(wim2)["images"]
    rows = [["Index", "Name", "Description", "Size"]] + [
        [str(im["index"]), im["name"], im["description"], f"{commas(im['total_bytes'])} bytes"]
        for im in info]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]

    def line(cells):
        return " | ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    rule = line(["-" * w for w in widths])
    table = "\n".join([rule, line(rows[0]), rule] + [line(r) for r in rows[1:]])
    assert body(out) == f"Details for image : {wim2}\n\n{table}\n\n{OK}"


# -- commands that change WIMs: the result is checked with wimlib ----------------------


def test_apply_image(wim2, tmp_path):
    for n, spelling in enumerate((["/Index:2"], ["/Name:Second"])):
        dest, ref = tmp_path / f"out{n}", tmp_path / f"ref{n}"
        dest.mkdir()
        rc, out = dism("/Apply-Image", f"/ImageFile:{wim2}", f"/ApplyDir:{dest}", *spelling)
        assert rc == 0 and body(out) == OK
        wimlib_apply(wim2, 2, ref)
        assert _tree(dest) == _tree(ref)


def _tree(root) -> dict:
    out = {}
    for dp, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dp, f)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


@pytest.mark.parametrize("compress,expected", [("fast", "xpress"), ("max", "lzx"),
                                               ("none", "none")])
def test_capture_and_append_image(src, tmp_path, compress, expected):
    w = tmp_path / "cap.wim"
    rc, out = dism("/Capture-Image", f"/ImageFile:{w}", f"/CaptureDir:{src}",
                   "/Name:Captured", "/Description:by dism", f"/Compress:{compress}")
    assert rc == 0 and body(out) == OK
    rc, out = dism("/Append-Image", f"/ImageFile:{w}", f"/CaptureDir:{src}", "/Name:Again")
    assert rc == 0
    info = wimlib_info(w)
    assert info["header"]["compression"] == expected
    assert [(i["name"], i["description"]) for i in info["images"]] == [
        ("Captured", "by dism"), ("Again", None)]


def test_export_delete_split(wim2, tmp_path):
    dst = tmp_path / "dst.wim"
    rc, _ = dism("/Export-Image", f"/SourceImageFile:{wim2}", "/SourceIndex:2",
                 f"/DestinationImageFile:{dst}", "/DestinationName:Exported")
    assert rc == 0
    rc, _ = dism("/Export-Image", f"/SourceImageFile:{wim2}", "/SourceName:First image",
                 f"/DestinationImageFile:{dst}")
    assert rc == 0
    assert [i["name"] for i in wimlib_info(dst)["images"]] == ["Exported", "First image"]
    esd = tmp_path / "x.esd"
    rc, _ = dism("/Export-Image", f"/SourceImageFile:{wim2}", "/SourceIndex:1",
                 f"/DestinationImageFile:{esd}", "/Compress:recovery")
    assert rc == 0 and wimlib_info(esd)["header"]["compression"] == "lzms"
    rc, _ = dism("/Delete-Image", f"/ImageFile:{dst}", "/Index:1", "/CheckIntegrity")
    assert rc == 0
    assert [i["name"] for i in wimlib_info(dst)["images"]] == ["First image"]
    rc, _ = dism("/Split-Image", f"/ImageFile:{wim2}", f"/SWMFile:{tmp_path / 'p.swm'}",
                 "/FileSize:1")
    assert rc == 0 and (tmp_path / "p.swm").exists()


# -- mounts ------------------------------------------------------------------------------


@pytest.mark.parametrize("names", [
    ("/Mount-Wim", "/WimFile", "/Commit-Wim", "/Unmount-Wim", "/Get-MountedWimInfo",
     "/Remount-Wim", "/Cleanup-Wim"),
    ("/Mount-Image", "/ImageFile", "/Commit-Image", "/Unmount-Image",
     "/Get-MountedImageInfo", "/Remount-Image", "/Cleanup-Mountpoints")])
def test_mount_commit_unmount(require_fuse, wim2, tmp_path, names):
    mount, wimfile, commit, unmount, info, remount, cleanup = names
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    rc, out = dism(mount, f"{wimfile}:{wim2}", "/Index:1", f"/MountDir:{mnt}")
    assert rc == 0 and body(out) == OK
    try:
        rc, out = dism(info)
        assert rc == 0
        rec = (f"Mount Dir : {mnt}\nImage File : {wim2}\nImage Index : 1\n"
               "Mounted Read/Write : Yes\nStatus : Ok\n\n")
        assert body(out).startswith("Mounted images:\n\n") and rec in body(out)
        import json
        rc, js = dism(info, "--json")
        assert json.loads(js) == native_json("mounts")
        assert dism(remount, f"/MountDir:{mnt}")[0] == 0      # healthy: nothing to do
        (mnt / "new.txt").write_text("committed")
        assert dism(commit, f"/MountDir:{mnt}")[0] == 0
        (mnt / "dropped.txt").write_text("discarded")
    finally:
        rc, out = dism(unmount, f"/MountDir:{mnt}", "/Discard")
    assert rc == 0 and body(out) == OK
    ref = tmp_path / "ref"
    wimlib_apply(wim2, 1, ref)
    assert (ref / "new.txt").read_text() == "committed"
    assert not (ref / "dropped.txt").exists()
    assert dism(cleanup)[0] == 0


def test_mount_readonly_and_errors(require_fuse, wim2, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    rc, _ = dism("/Mount-Image", f"/ImageFile:{wim2}", "/Name:Second", f"/MountDir:{mnt}",
                 "/ReadOnly")
    assert rc == 0
    try:
        assert (mnt / "extra.txt").read_text() == "more"
        with pytest.raises(OSError):
            (mnt / "x").write_text("no")
        # dism-reference.md 3.4 / anchors.md: 0xc1420127 already mounted; exit 124.
        rc, out = dism("/Mount-Image", f"/ImageFile:{wim2}", "/Index:1", f"/MountDir:{mnt}")
        assert rc == 124 and "\nError: 0xc1420127\n\n" in out
    finally:
        assert dism("/Unmount-Image", f"/MountDir:{mnt}", "/Discard")[0] == 0
    full = tmp_path / "full"
    full.mkdir()
    (full / "f").write_text("x")
    rc, out = dism("/Mount-Image", f"/ImageFile:{wim2}", "/Index:1", f"/MountDir:{full}")
    assert rc == 120 and "\nError: 0xc1420114\n\n" in out        # mount dir not empty
    rc, out = dism("/Unmount-Image", f"/MountDir:{full}", "/Commit")
    assert rc == 122 and "\nError: 0xc142011c\n\n" in out        # not a mount point


# -- DISM's errors and exit statuses -------------------------------------------------------


@pytest.mark.parametrize("args,code,status,message", [
    (["/Online", "/Get-MountedWimInfo"], "50", 50, "not supported"),
    (["/Add-Package", "/PackagePath:x.cab"], "87", 87, "/Add-Package needs /Image"),
    (["/Get-WimInfo"], "87", 87, "/imagefile option is required"),
    (["/Get-WimInfo", "/WimFile:{w}", "/Bogus"], "87", 87, "The bogus option is unknown."),
    (["/Get-WimInfo", "/WimFile:{w}", "/Index:9"], "87", 87, ""),
    (["/Get-WimInfo", "/WimFile:{d}/none.wim"], "2", 2, "no such file"),
    (["/Get-WimInfo", "/WimFile:{d}/src/b.bin"], "11", 11, ""),
    (["/Unmount-Image", "/MountDir:{d}"], "87", 87, "/Commit and /Discard"),
    (["/Image:{d}", "/Online", "/Get-Drivers"], "87", 87, "cannot be used together"),
    (["/LogLevel:5", "/Get-MountedWimInfo"], "87", 87, "log level"),
    (["/Format:Wide", "/Get-MountedWimInfo"], "87", 87, "format"),
    (["/?", "/Get-MountedWimInfo"], "87", 87, "must be the last"),
    (["/WinDir:Windows", "/Get-MountedWimInfo"], "87", 87, "/WinDir"),
    (["/Get-MountedWimInfo", "/Get-WimInfo"], "87", 87, "Only one"),
    (["/Mount-Wim:x"], "87", 87, "does not take an argument"),
    (["/Get-WimInfo", "/WimFile"], "87", 87, "requires an argument"),
    (["/Get-WimInfo", "/WimFile:{w}", "/WimFile:{w}"], "87", 87, "more than once"),
    (["/Apply-Image", "/ImageFile:{w}", "/Index:1", "/ApplyDir:{d}", "/Compact"], "50", 50,
     "not supported"),
    (["/ScratchDir:{d}/nope", "/Get-MountedWimInfo"], "3", 3, "scratch"),
    (["just-a-word"], "87", 87, "doesn't recognize the command-line option"),
    (["/Apply-Unattend:{d}/u.xml"], "87", 87, "/Apply-Unattend needs /Image"),
])
def test_errors(wim2, tmp_path, args, code, status, message):
    log = tmp_path / "logs" / "my.log"
    rc, out = dism(f"/LogPath:{log}", *[a.format(w=wim2, d=tmp_path) for a in args])
    assert rc == status
    text = body(out)
    # dism-reference.md 3.1: "\r\nError: %1\r\n\r\n", the message, the log footer.
    assert text.startswith(f"\nError: {code}\n\n"), text
    assert text.endswith(f"\n\nThe DISM log file can be found at {log}\n")
    assert message in text
    assert "Traceback" not in out and "internal error" not in out
    assert log.exists() and f"Error: {int(code)}" in log.read_text()


def test_json_error_carries_the_full_code(tmp_path):
    import json
    rc, out = dism("/Unmount-Image", f"/MountDir:{tmp_path}", "/Commit", "--json")
    err = json.loads(out)["error"]
    assert rc == 122
    assert (err["code"], err["text"], err["exit_status"]) == (0xC142011C, "0xc142011c", 122)


def test_quiet_prints_only_errors(wim2, tmp_path):
    rc, out = dism("/Quiet", "/Get-WimInfo", f"/WimFile:{wim2}")
    assert rc == 0 and out == ""
    rc, out = dism("/Quiet", "/Get-WimInfo", f"/WimFile:{tmp_path}/none.wim")
    assert rc == 2 and out.startswith("\nError: 2\n\n")


def test_help(wim2):
    rc, out = dism("/?")
    assert rc == 0
    for name in ("/Get-WimInfo", "/Mount-Image", "/Unmount-Wim", "/Export-Image",
                 "/Split-Image", "/Cleanup-Mountpoints", "/LogPath", "/Format"):
        assert name in out
    rc, out = dism("/Mount-Wim", "/?")
    assert rc == 0 and "/Mount-Wim | /Mount-Image" in out and "/MountDir:<dir>" in out
    rc, out = dism("/Get-ProvisionedAppxPackages", "/?")
    assert rc == 87 and "The get-provisionedappxpackages option is unknown." in out


class _Terminal:
    """A stdout that says it is a terminal (DISM draws its bar only there)."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, s: str) -> None:
        self.parts.append(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_only(wim2, tmp_path):
    from servicing.dism import main

    term = _Terminal()
    rc = main(["/Apply-Image", f"/ImageFile:{wim2}", "/Index:1", f"/ApplyDir:{tmp_path / 'a'}"],
              out=term)
    text = "".join(term.parts)
    assert rc == 0
    # dism-reference.md 3.1: the bar ends at [====...100.0%...====] before the result.
    assert "\r[" + "=" * 26 + "100.0%" + "=" * 26 + "]\n" in text
    assert text.endswith(OK)
    rc, out = dism("/Apply-Image", f"/ImageFile:{wim2}", "/Index:1",
                   f"/ApplyDir:{tmp_path / 'b'}")
    assert rc == 0 and "%" not in out and "\r" not in out      # not a terminal: no bar


def test_registered_in_wimfs_help(capsys):
    from wimfs.cli import main

    main(["--help"])
    assert "dism" in capsys.readouterr().out
