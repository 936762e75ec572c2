"""Metadata resources written by us parse back to the same tree (and wimlib reads them,
see the writer tests)."""

from __future__ import annotations

import os

import pytest

from tests.unit.conftest import corpus_dir, corpus_wims
from wimfs.format.metadata import build_metadata, parse_dentry_tree, parse_security_data
from wimfs.errors import WimCorruptError
from wimfs.image import Image
from wimfs.wim import Wim


def _flatten(img: Image) -> dict:
    out = {}
    for d in img.walk():
        i = d.inode
        out[d.path] = (d.short_name, i.attributes, i.security_id, i.creation_time,
                       i.last_access_time, i.last_write_time, i.reparse_tag, i.rp_flags,
                       i.stream_hashes(), i.tagged_items, len(i.dentries),
                       tuple(sorted(x.path for x in i.dentries)))
    return out


@pytest.mark.parametrize("path", corpus_wims((".wim",)) or ["<none>"], ids=os.path.basename)
def test_corpus_metadata_roundtrip(path):
    if path == "<none>":
        corpus_dir()
    if any(b in path for b in ("cyclic", "VerifyFail")):
        # Broken on purpose: their metadata must be refused, not round-tripped.
        with pytest.raises(WimCorruptError):
            with Wim(path) as wim:
                wim.image(1)
        return
    wim = Wim(path)
    img = wim.image(1)
    with wim:
        raw = build_metadata(img.security, img.root)
        sds, root_off = parse_security_data(raw)
        assert sds == img.security
        again = Image.build(1, sds, parse_dentry_tree(raw, root_off), wim.blob_table.blobs)
        assert _flatten(again) == _flatten(img)


def test_generated_metadata_roundtrip(mixed_wims):
    wims, _ = mixed_wims
    for path in wims.values():
        with Wim(path) as wim:
            img = wim.image(1)
            raw = build_metadata(img.security, img.root)
            sds, root_off = parse_security_data(raw)
            again = Image.build(1, sds, parse_dentry_tree(raw, root_off), wim.blob_table.blobs)
            assert _flatten(again) == _flatten(img)
