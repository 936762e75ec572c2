"""A WIM of four Windows images of two editions sharing most files (test fixture).

Images 1 and 3 are "Professional", 2 and 4 "Enterprise" (their SOFTWARE EditionID and
ProductName differ); 3 and 4 hold one extra file each; all four share the corpus hives,
the kernel and a 256 KiB file; images of one edition have the same SOFTWARE hive. Built with wimlib-imagex capture + append.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from servicing.regf import REG_SZ
from windows_trees import SOFTWARE_10, software_hive, windows_tree

EDITIONS = {1: "Professional", 2: "Enterprise", 3: "Professional", 4: "Enterprise"}
PRODUCT = {"Professional": "Windows 10 Pro", "Enterprise": "Windows 10 Enterprise"}


def edition_tree(root: Path, hives: Path, edition: str, software: Path,
                 extra: str | None = None) -> Path:
    """A Windows tree of *edition* whose SOFTWARE hive is a copy of *software* (made once
    per edition, so that the images of one edition share it, as real editions share
    their unchanged files)."""
    tree = windows_tree(root, hives, "10clean")
    if not software.exists():
        software_hive(software, {**SOFTWARE_10, "EditionID": (REG_SZ, edition),
                                 "ProductName": (REG_SZ, PRODUCT[edition])})
    shutil.copyfile(software, tree / "Windows/System32/config/SOFTWARE")
    shared = random.Random(7).randbytes(256 << 10)
    (tree / "Windows/System32/shared.dll").write_bytes(shared)
    if extra:
        (tree / "Windows" / extra).write_text(f"only in {extra}\n")
    return tree


def editions_wim(tmp: Path, hives: Path, compress: str = "lzx") -> Path:
    """The four-image WIM (see the module doc)."""
    from tests.helpers import wimlib_append, wimlib_capture
    wim = tmp / "install.wim"
    for index, edition in EDITIONS.items():
        tree = edition_tree(tmp / f"src{index}", hives, edition, tmp / f"{edition}.hive",
                            extra=f"extra{index}.txt" if index > 2 else None)
        name = f"{PRODUCT[edition]} #{index}"
        if index == 1:
            wimlib_capture(tree, wim, compress=compress, name=name)
        else:
            wimlib_append(tree, wim, name=name)
        shutil.rmtree(tree)
    return wim
