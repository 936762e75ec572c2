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


def make_test_catalog(files: dict[str, bytes], out: pathlib.Path) -> pathlib.Path:
    """A catalog signing *files* (flat SHA-1 members, as makecat writes for non-PE
    files), signed by a throw-away test certificate with osslsigncode.

    The member layout is copied from a real catalog of the corpus (arduino_gemma.cat):
    identifier = the digest as upper-case hex in UTF-16LE with a NUL, attributes File
    name, SpcIndirectDataContent digest, member info. Returns the test CA certificate."""
    import hashlib

    from asn1crypto import cms

    from servicing.formats.catalog import _signify
    _signify()                               # registers signify's CTL ASN.1 types
    from signify.asn1.ctl import SubjectIdentifier, TrustedSubject, TrustedSubjects
    template = (corpus_dir() / "drivers" / "arduino" / "arduino_gemma.cat").read_bytes()
    ci = cms.ContentInfo.load(template)
    ctl = ci["content"]["encap_content_info"]["content"]
    model = ctl["trusted_subjects"][0].dump()
    subjects = []
    for name, data in sorted(files.items()):
        digest = hashlib.sha1(data).digest()
        s = TrustedSubject.load(model)
        s["subject_identifier"] = SubjectIdentifier(
            (digest.hex().upper() + "\0").encode("utf-16-le"))
        for attr in s["subject_attributes"]:
            value = attr["values"][0]
            if attr["type"].native == "microsoft_spc_indirect_data_content":
                value["message_digest"]["digest"] = digest
            elif attr["type"].native == "microsoft_cat_namevalue" and \
                    value["refname"].native == "File":
                value["value"] = name
        subjects.append(s)
    ctl["trusted_subjects"] = TrustedSubjects(subjects)
    unsigned = out.with_suffix(".unsigned")
    unsigned.write_bytes(ci.dump(force=True))
    ca = out.parent / "test-ca"
    ca.mkdir(exist_ok=True)
    key, cert = ca / "key.pem", ca / "cert.pem"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "3650",
                        "-subj", "/CN=wimfs test signer"], check=True, capture_output=True)
    subprocess.run(["osslsigncode", "sign", "-certs", str(cert), "-key", str(key),
                    "-h", "sha256", "-in", str(unsigned), "-out", str(out)],
                   check=True, capture_output=True)
    unsigned.unlink()
    return cert


def osslsigncode_verifies(cat: pathlib.Path, ca: pathlib.Path) -> bool:
    out = subprocess.run(["osslsigncode", "verify", "-CAfile", str(ca), "-in", str(cat)],
                         capture_output=True, text=True)
    return "Signature verification: ok" in out.stdout
