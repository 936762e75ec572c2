"""Deterministic test-tree generators.

``make_tree(root, kind)`` fills ``root`` (created if needed) with a seeded, reproducible tree.
Kinds: see ``KINDS``; ``"all"`` builds every kind in its own sub-directory ``root/<kind>``.
Symlinks with absolute targets point *inside* ``root`` (so wimlib's reparse-point fixup applies)
unless their name says ``outside``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

CHUNK = 32768
SEED = 0x5157494D  # "QWIM"


def _rng(kind: str) -> random.Random:
    return random.Random(f"{SEED}:{kind}")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _empty(root: Path, r: random.Random) -> None:
    _write(root / "empty.bin", b"")
    _write(root / "sub" / "also_empty", b"")


def _chunks(root: Path, r: random.Random) -> None:
    for size in (1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK - 1, 2 * CHUNK, 2 * CHUNK + 1,
                 4 * CHUNK, 131072 + 1):
        _write(root / f"rand_{size}.bin", r.randbytes(size))
    # compressible text, exactly one chunk and one chunk + 1
    text = b"".join(b"line %06d of some compressible text\n" % i for i in range(2000))
    _write(root / "text_32768.txt", text[:CHUNK])
    _write(root / "text_32769.txt", text[: CHUNK + 1])


def _mixed(root: Path, r: random.Random) -> None:
    # random then zeros: compressed resources mix stored-raw and compressed chunks
    _write(root / "rand40k_zero200k.bin", r.randbytes(40 * 1024) + bytes(200 * 1024))
    _write(root / "rand32k_zero32k.bin", r.randbytes(32 * 1024) + bytes(32 * 1024))
    _write(root / "zero32k_rand32k_zero1.bin", bytes(32 * 1024) + r.randbytes(32 * 1024) + b"\0")


def _large(root: Path, r: random.Random) -> None:
    # 3 MiB + 123: random blocks interleaved with repetitive blocks (several LZMS solid chunks)
    parts = []
    for i in range(96):
        parts.append(r.randbytes(32 * 1024) if i % 3 else (b"wimfs-%04d " % i) * 5958)
    data = b"".join(parts)[: 3 * 1024 * 1024] + r.randbytes(123)
    _write(root / "large.bin", data)


UNICODE_NAMES = [
    "日本語のファイル.txt",            # CJK
    "中文目录",                        # CJK dir (gets a file inside)
    "emoji_😀🎉.txt",                  # astral plane (UTF-16 surrogate pairs)
    "cafe\u0301_combining.txt",        # combining acute accent (NFD)
    "café_precomposed.txt",            # NFC variant, must stay distinct
    "Ωmega ünïcödé spaces.txt",
    "a" * 255,                         # 255 bytes UTF-8 == 255 UTF-16 units
    "語" * 85,                         # 255 bytes UTF-8 (85 UTF-16 units)
]


def _unicode(root: Path, r: random.Random) -> None:
    for name in UNICODE_NAMES:
        if name == "中文目录":
            _write(root / name / "内容.txt", "内容\n".encode())
        else:
            _write(root / name, name.encode("utf-8") + b"\n")
    # a 255-UTF-16-unit name whose UTF-8 form is also <= 255 bytes needs ASCII; above covers it.
    # one with mixed widths right at the byte limit: 1 emoji (4 bytes) + 251 ASCII = 255 bytes
    _write(root / ("😀" + "b" * 251), b"edge\n")


def _deep(root: Path, r: random.Random, depth: int = 40) -> None:
    p = root
    for i in range(depth):
        p = p / f"d{i:02d}"
    _write(p / "bottom.txt", b"deep bottom\n")
    _write(root / "d00" / "d01" / "mid.txt", b"mid\n")


def _hardlinks(root: Path, r: random.Random) -> None:
    _write(root / "a" / "pair_1", r.randbytes(5000))
    (root / "b").mkdir(exist_ok=True)
    os.link(root / "a" / "pair_1", root / "b" / "pair_2")
    _write(root / "a" / "triple_1", r.randbytes(70000))
    os.link(root / "a" / "triple_1", root / "a" / "triple_2")
    (root / "c" / "deeper").mkdir(parents=True)
    os.link(root / "a" / "triple_1", root / "c" / "deeper" / "triple_3")
    # same content, NOT linked (must stay distinct inodes; wimlib dedups the blob only)
    _write(root / "a" / "same_content_1", b"same content\n")
    _write(root / "b" / "same_content_2", b"same content\n")
    # hard-linked empty file
    _write(root / "a" / "empty_linked_1", b"")
    os.link(root / "a" / "empty_linked_1", root / "c" / "empty_linked_2")


def _symlinks(root: Path, r: random.Random) -> None:
    _write(root / "target.txt", b"symlink target\n")
    (root / "dir").mkdir()
    _write(root / "dir" / "inner.txt", b"inner\n")
    os.symlink("target.txt", root / "rel_link")
    os.symlink("../target.txt", root / "dir" / "rel_up_link")
    os.symlink(str((root / "dir" / "inner.txt").absolute()), root / "abs_inside_link")
    os.symlink(str((root / "dir").absolute()), root / "abs_inside_dir_link")
    os.symlink("/etc/outside-of-tree/nonexistent", root / "abs_outside_link")
    os.symlink("does/not/exist", root / "dangling_link")
    os.symlink("dir", root / "dir_link")


def _emptydir(root: Path, r: random.Random) -> None:
    (root / "empty_dir").mkdir(parents=True)
    (root / "nested" / "empty_leaf").mkdir(parents=True)


def _modes(root: Path, r: random.Random) -> None:
    """Distinct permission bits and (as root) owners, for --unix-data captures."""
    spec = [("f0600", 0o600), ("f0444", 0o444), ("f0755_exec", 0o755), ("f0640", 0o640),
            ("f4755_setuid", 0o4755)]
    for name, mode in spec:
        _write(root / name, name.encode() + b"\n")
        os.chmod(root / name, mode)
    (root / "d0700").mkdir()
    _write(root / "d0700" / "inside", b"x\n")
    os.chmod(root / "d0700", 0o700)
    (root / "d1777_sticky").mkdir()
    os.chmod(root / "d1777_sticky", 0o1777)
    if os.geteuid() == 0:
        os.chown(root / "f0640", 1234, 5678)
        os.chown(root / "d0700", 4321, 8765)


KINDS = {
    "empty": _empty,
    "chunks": _chunks,
    "mixed": _mixed,
    "large": _large,
    "unicode": _unicode,
    "deep": _deep,
    "hardlinks": _hardlinks,
    "symlinks": _symlinks,
    "emptydir": _emptydir,
    "modes": _modes,
}


def make_tree(root, kind: str = "all") -> Path:
    """Build a deterministic tree of ``kind`` under ``root``; returns ``root`` as a Path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if kind == "all":
        for k in KINDS:
            make_tree(root / k, k)
        return root
    try:
        fn = KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown tree kind {kind!r}; known: all, {', '.join(KINDS)}") from None
    fn(root, _rng(kind))
    return root


def layered_tree(src: Path) -> None:
    """A small tree for tests of lazily parsed directories: a deep path, a wide
    directory, a hard-link group over three directories, a subtree to move."""
    (src / "a/b/c/d/e").mkdir(parents=True)
    (src / "a/b/c/d/e/deep.txt").write_text("deep\n")
    (src / "a/b/other.txt").write_text("other\n")
    (src / "wide").mkdir()
    for i in range(40):
        (src / f"wide/w{i:02d}").write_bytes(bytes([i]) * (i * 37))
    for i in range(4):
        (src / f"wide/s{i}/t").mkdir(parents=True)
        (src / f"wide/s{i}/f").write_text(f"{i}\n")
    for sub in ("x", "y", "z"):
        (src / "links" / sub).mkdir(parents=True)
    (src / "links/x/one.txt").write_text("linked\n")
    os.link(src / "links/x/one.txt", src / "links/y/two.txt")
    os.link(src / "links/x/one.txt", src / "links/z/three.txt")
    (src / "move/inner/deeper").mkdir(parents=True)
    (src / "move/inner/m.txt").write_text("moved\n")
    (src / "move/inner/deeper/n.txt").write_text("deeper\n")
