"""Packages and hive readers for the driver tests (oracles: hivexget, regipy)."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess

from tests.servicing.conftest import corpus_dir

CORPUS_INF = "inf/kvm-guest-drivers-windows/viostor/viostor.inx"


def stamp_viostor(folder: pathlib.Path, arch: str, *, payload: bytes = b"") -> pathlib.Path:
    """A viostor package made from the corpus .inx as stampinf would stamp it, with a
    generated viostor.sys (no catalog: it is test data, not a signed driver)."""
    text = (corpus_dir() / CORPUS_INF).read_bytes()
    for old, new in ((b"$ARCH$", arch.encode()), (b"_INX_SUBSYS_VENDOR_ID", b"1AF4"),
                     (b"INX_PLATFORM_DRIVERS_DIR", b"12"), (b"INX_COMPANY", b"Red Hat, Inc."),
                     (b"INX_PREFIX_VENDOR", b"Red Hat ")):
        text = text.replace(old, new)
    text = text.replace(b"DriverVer=01/01/2008,0.0.0.1", b"DriverVer=03/04/2024,100.95.104.26000")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "viostor.inf").write_bytes(text)
    (folder / "viostor.sys").write_bytes(payload or b"MZ generated viostor payload " * 64)
    return folder / "viostor.inf"


def copy_corpus_package(name: str, dst: pathlib.Path) -> pathlib.Path:
    src = corpus_dir() / "drivers" / name
    shutil.copytree(src, dst)
    return dst


def hivexget(hive: pathlib.Path, key: str, value: str | None = None) -> str:
    args = ["hivexget", str(hive), key] + ([value] if value is not None else [])
    out = subprocess.run(args, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.rstrip("\n")


def regipy_tree(hive: pathlib.Path, path: str) -> dict[str, dict[str, tuple[str, object]]]:
    """relative key path -> {value name: (type name, value)} below *path* (regipy)."""
    from regipy.registry import RegistryHive
    reg = RegistryHive(str(hive))
    root = reg.get_key(path)
    out = {}

    def walk(key, rel):
        out[rel] = {v.name: (v.value_type, v.value) for v in key.iter_values()}
        for sub in key.iter_subkeys():
            walk(sub, f"{rel}\\{sub.name}" if rel else sub.name)

    walk(root, "")
    return out


def inf_value(text: str, key: str) -> str:
    m = re.search(rf"^\s*{re.escape(key)}\s*=\s*([^;\r\n]*)", text, re.M | re.I)
    assert m, key
    return m.group(1).strip()


def build_tree(tmp: pathlib.Path, flavor: str) -> pathlib.Path:
    from tests.servicing.windows_trees import windows_tree
    return windows_tree(tmp / f"tree-{flavor}", corpus_dir() / "hives", flavor)
