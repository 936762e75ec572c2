"""Fixtures for engine unit tests: small WIMs made by wimlib-imagex (the oracle)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess

import pytest


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI (scripts/setup installs it)")
        pytest.skip(f"{name} not installed")
    return path


def capture(src, wim, compress="LZX", *extra) -> str:
    require_tool("wimlib-imagex")
    cmd = ["wimlib-imagex", "capture", str(src), str(wim), "test", f"--compress={compress}",
           *extra]
    subprocess.run(cmd, check=True, capture_output=True)
    return str(wim)


def make_mixed_tree(root, seed: int = 1) -> dict[str, bytes]:
    """Files that give raw and compressed chunks, exact chunk sizes and empty files."""
    rng = random.Random(seed)
    files = {
        "empty": b"",
        "one_chunk": bytes(rng.getrandbits(8) for _ in range(32768)),
        "random_then_zeros": rng.randbytes(40 * 1024) + bytes(200 * 1024),
        "text": b"".join(b"line %d of some text\n" % i for i in range(20000)),
        "sub/dir/nested.bin": rng.randbytes(70000) + b"x" * 100000,
        "sub/small": b"hello",
    }
    for rel, data in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
    return files


@pytest.fixture(scope="session")
def mixed_wims(tmp_path_factory):
    """{'none'|'xpress'|'lzx'|'lzms'|'solid': wim path}, plus the source files."""
    base = tmp_path_factory.mktemp("mixed")
    src = base / "src"
    files = make_mixed_tree(src)
    wims = {}
    for name, args in {"none": ("none",), "xpress": ("XPRESS",), "lzx": ("LZX",),
                       "lzms": ("LZMS",), "solid": ("LZMS", "--solid")}.items():
        wims[name] = capture(src, base / f"{name}.wim", *args)
    return wims, files


def corpus_dir() -> str:
    d = os.environ.get("WIMFS_CORPUS") or os.path.join(
        os.path.dirname(__file__), "..", "..", "..", "shared", "corpus")
    d = os.path.abspath(d)
    if not os.path.isdir(d):
        if os.environ.get("CI"):
            pytest.fail(f"test corpus missing at {d}")
        pytest.skip("shared corpus not available")
    return d


def corpus_wims(suffixes: tuple[str, ...] = (".wim", ".swm", ".esd")) -> list[str]:
    """Corpus WIMs for parametrize (empty when the corpus is absent: the test that
    receives the placeholder then calls corpus_dir(), which skips or fails in CI)."""
    try:
        d = corpus_dir()
    except BaseException:
        return []
    out = []
    for sub, _, files in os.walk(os.path.join(d, "wim")):
        out += [os.path.join(sub, f) for f in files if f.endswith(suffixes)]
    return sorted(out)
