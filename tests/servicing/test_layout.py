"""Layer rules of servicing/ (architecture-review.md section 3): features and the
registry see only a Target (no overlay, no FUSE, no argument parsing); nothing in
servicing/ imports the FUSE layer."""

from __future__ import annotations

import subprocess
import sys

LIBRARY = ["servicing.features.image_info", "servicing.registry", "servicing.target",
           "servicing.target.directory", "servicing.log", "servicing.changes"]


def loaded_after(modules: list[str]) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + \
        "print('\\n'.join(sorted(sys.modules)))"
    return set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                              text=True).stdout.split())


def test_library_layers():
    loaded = loaded_after(LIBRARY)
    assert "servicing.features.image_info" in loaded
    assert "argparse" not in loaded
    assert not {m for m in loaded if m.startswith(("wimfs.fuse", "pyfuse3", "trio",
                                                   "wimfs.overlay", "wimfs.cli"))}


def test_image_target_uses_the_overlay_not_fuse():
    loaded = loaded_after(["servicing.target.image", "wimfs.overlay"])
    assert "wimfs.overlay" in loaded
    assert not {m for m in loaded if m.startswith(("wimfs.fuse", "pyfuse3", "trio"))}
