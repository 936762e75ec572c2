"""Export copies resources as stored when their compression already fits the destination
(as wimlib and DISM do), and recompresses when it does not or when asked to."""

from __future__ import annotations

import os

import pytest

from tests.helpers.wimlib import wimlib_capture, wimlib_verify
from tests.image.conftest import wimfs
from wimfs.format import structs as S
from wimfs.wim import Wim

pytestmark = pytest.mark.usefixtures("need_wimlib")


def _stored(wim: Wim) -> dict[bytes, tuple[int, bytes]]:
    out = {}
    for h, b in wim.blob_table.blobs.items():
        r = b.rdesc
        out[h] = (r.compression_type, os.pread(wim.fd, r.size_in_wim, r.offset_in_wim))
    return out


def test_same_compression_is_copied_as_stored(tree, tmp_path):
    src = wimlib_capture(tree, tmp_path / "src.wim", compress="lzx")
    wimfs("export", src, tmp_path / "raw.wim", "-q")
    wimfs("export", src, tmp_path / "xp.wim", "--compress", "xpress", "-q")
    for p in ("raw.wim", "xp.wim"):
        assert wimlib_verify(tmp_path / p).returncode == 0
    with Wim(str(src)) as a, Wim(str(tmp_path / "raw.wim")) as b, \
            Wim(str(tmp_path / "xp.wim")) as c:
        sa, sb = _stored(a), _stored(b)
        assert sa.keys() == sb.keys() and sa == sb       # byte for byte
        compressed = [h for h, (t, _) in sa.items() if t == S.COMPRESSION_LZX]
        assert compressed
        sc = _stored(c)
        # Recompressed: XPRESS, or stored plainly where XPRESS does not pay; never LZX.
        assert {sc[h][0] for h in compressed} <= {S.COMPRESSION_XPRESS, S.COMPRESSION_NONE}
        assert any(sc[h][0] == S.COMPRESSION_XPRESS for h in compressed)
        for h, blob in c.blob_table.blobs.items():
            assert c.read_blob(blob) == a.read_blob(a.blob_table.blobs[h])
