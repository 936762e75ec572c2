"""Architecture rules: the format layer is pure; servicing never touches the FUSE layer."""

import subprocess
import sys

import pytest

FORMAT_MODULES = ["wimfs.format", "wimfs.format.structs", "wimfs.format.header",
                  "wimfs.format.blobtable", "wimfs.format.metadata", "wimfs.format.xmlinfo",
                  "wimfs.format.integrity", "wimfs.format.reparse"]


def _loaded_after_import(modules: list[str]) -> set[str]:
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules) +
            "print('\\n'.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    return set(out.split())


def test_format_layer_imports_neither_pyfuse3_nor_trio():
    loaded = _loaded_after_import(FORMAT_MODULES)
    assert "wimfs.format.metadata" in loaded  # the import really happened
    assert not {m for m in loaded if m.split(".")[0] in ("pyfuse3", "trio")}


def test_engine_imports_no_fuse():
    loaded = _loaded_after_import(["wimfs.wim", "wimfs.resource", "wimfs.image", "wimfs.codec"])
    assert "wimfs.wim" in loaded
    assert "pyfuse3" not in loaded
    assert not any(m.startswith("wimfs.fuse") for m in loaded)


def test_cli_help_does_not_import_fuse():
    code = ("import sys\nfrom wimfs.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('pyfuse3' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().endswith("False")


def test_servicing_does_not_import_fuse_layer():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2] / "servicing"
    if not any(root.rglob("*.py")):
        pytest.skip("servicing package is empty")
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "wimfs.fuse" not in text and "pyfuse3" not in text, path


def test_engine_does_not_import_servicing():
    """The engine reaches the registry code only through the hook the CLI registers
    (wimfs.hooks.set_windows_info_provider), never by import."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2] / "wimfs"
    pattern = re.compile(r"^\s*(from|import)\s+servicing\b", re.M)
    offenders = [str(p) for p in root.rglob("*.py") if pattern.search(p.read_text("utf-8"))]
    assert not offenders
    loaded = _loaded_after_import(["wimfs.overlay.paths", "wimfs.overlay.commit",
                                   "wimfs.imaging", "wimfs.builder", "wimfs.fuse.rwops",
                                   "wimfs.commands.mount"])
    assert "wimfs.overlay.session" in loaded
    assert not {m for m in loaded if m.split(".")[0] == "servicing"}


def test_overlay_imports_no_fuse():
    loaded = _loaded_after_import(["wimfs.overlay.paths", "wimfs.overlay.commit"])
    assert "wimfs.overlay.session" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("pyfuse3", "trio")}
    assert not any(m.startswith("wimfs.fuse") for m in loaded)


def test_servicing_formats_and_features_layers():
    """formats/ (parsers) import nothing from target/ or registry/; features/ import
    neither argparse nor the command front ends."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2] / "servicing"
    bad = re.compile(r"^\s*(from|import)\s+servicing\.(target|registry|features|commands)\b",
                     re.M)
    for path in (root / "formats").glob("*.py"):
        assert not bad.search(path.read_text()), path.name
    front = re.compile(r"^\s*(from|import)\s+(argparse|servicing\.commands|servicing\.cli)\b",
                       re.M)
    for path in (root / "features").glob("*.py"):
        assert not front.search(path.read_text()), path.name
