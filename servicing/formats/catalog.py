"""Driver package catalogs (.cat) and the hashes they sign, read with signify.

A catalog is a signed certificate trust list whose members are file hashes: the
Authenticode hash for a PE file (.sys, .dll, .exe), the plain hash of the bytes for
anything else (the INF). Our verdict on a package, as ``driver add`` needs it:

* the catalog parses, its signed content matches the signer's message digest, and the
  signer certificate carried in it verifies the signed attributes (integrity);
* every file of the package has a member whose digest equals the file's hash.

The certificate chain is not evaluated against a root store: an offline image has
none we could trust here (DISM leaves that to Windows at boot for non-boot drivers).

signify needs oscrypto, whose newest release (1.3.0) cannot parse the version of
OpenSSL 3.0.10 and later ("Error detecting the version of libcrypto"); upstream fixed
the regular expression in wbond/oscrypto d5f3437 (2023, unreleased). :func:`_signify`
applies exactly that fix when the release fails, and nothing else.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import io
import re
import sys
from dataclasses import dataclass, field

from wimfs.errors import EXIT_BAD_IMAGE, DependencyError, WimfsError

_OSCRYPTO = "oscrypto._openssl._libcrypto_ctypes"


class CatalogError(WimfsError):
    exit_code = EXIT_BAD_IMAGE


def _fix_oscrypto() -> None:
    spec = importlib.util.find_spec(_OSCRYPTO)
    source = spec.loader.get_source(_OSCRYPTO)
    fixed = source.replace("\\\\b(\\\\d\\\\.\\\\d\\\\.\\\\d[a-z]*)\\\\b",
                           "\\\\b(\\\\d+\\\\.\\\\d+\\\\.\\\\d+[a-z]*)\\\\b")
    if fixed == source:
        raise DependencyError("signify cannot load oscrypto and the known fix does not apply")
    for name in [m for m in sys.modules if m.startswith(("oscrypto", "signify"))]:
        del sys.modules[name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[_OSCRYPTO] = module
    exec(compile(fixed, spec.origin, "exec"), module.__dict__)


def _signify():
    """The signify modules we use (importing them once, with the oscrypto fix)."""
    try:
        from signify.authenticode.signed_file.pe import SignedPEFile
        from signify.authenticode.trust_list import CertificateTrustList
    except Exception as e:               # oscrypto raises LibraryNotFoundError
        if "version of libcrypto" not in str(e):
            raise DependencyError(f"signify cannot be loaded: {e}") from None
        _fix_oscrypto()
        from signify.authenticode.signed_file.pe import SignedPEFile
        from signify.authenticode.trust_list import CertificateTrustList
    return SignedPEFile, CertificateTrustList


@dataclass
class CatalogMember:
    digest: bytes
    algorithm: str              # "sha1" or "sha256"


@dataclass
class Catalog:
    members: list[CatalogMember] = field(default_factory=list)
    signer: str | None = None   # the signer certificate's common name
    intact: bool = False        # content digest and signer signature verified
    problem: str | None = None  # why it is not intact

    def covers(self, data: bytes) -> bool:
        wanted = {m.algorithm for m in self.members}
        digests = file_digests(data, wanted)
        return any(digests.get(m.algorithm) == m.digest for m in self.members)


def _algorithm(indirect) -> str | None:
    name = getattr(indirect.digest_algorithm, "__name__", "") or \
        getattr(indirect.digest_algorithm(), "name", "")
    name = name.replace("openssl_", "").lower()
    return name if name in ("sha1", "sha256") else None


def read_catalog(data: bytes, name: str = "catalog") -> Catalog:
    """Parse a .cat and check its integrity; CatalogError when it is not a catalog."""
    _, ctl_class = _signify()
    try:
        ctl = ctl_class.from_envelope(data)
        subjects = list(ctl.subjects)
    except Exception as e:
        raise CatalogError(f"{name}: not a signed catalog ({type(e).__name__})") from None
    cat = Catalog()
    for subj in subjects:
        indirect = subj.indirect_data
        algorithm = _algorithm(indirect) if indirect is not None else None
        if algorithm is None:
            continue
        cat.members.append(CatalogMember(indirect.digest, algorithm))
    _check_integrity(ctl, cat)
    return cat


def _check_integrity(ctl, cat: Catalog) -> None:
    try:
        signer = ctl.signer_info
        if ctl.get_content_digest() != signer.message_digest:
            cat.problem = "the catalog content does not match its signature"
            return
        certs = [c for c in ctl.certificates
                 if c.serial_number == signer.serial_number and c.issuer == signer.issuer]
        if not certs:
            cat.problem = "the signer certificate is not in the catalog"
            return
        certs[0].verify_signature(signer.encrypted_digest,
                                  signer._encoded_authenticated_attributes,
                                  signer.digest_algorithm)
        dn = certs[0].subject.dn
        cn = re.search(r"(?:^|, )CN=((?:[^,\\]|\\.)+)", dn)
        cat.signer = cn.group(1) if cn else dn
        cat.intact = True
    except Exception as e:
        cat.problem = f"the catalog signature does not verify ({type(e).__name__})"


def is_pe(data: bytes) -> bool:
    if len(data) < 0x40 or data[:2] != b"MZ":
        return False
    off = int.from_bytes(data[0x3C:0x40], "little")
    return data[off:off + 4] == b"PE\0\0"


def file_digests(data: bytes, algorithms=("sha1", "sha256")) -> dict[str, bytes]:
    """The digests a catalog member holds for this file: Authenticode for PE files."""
    funcs = {a: getattr(hashlib, a) for a in algorithms if a in ("sha1", "sha256")}
    if is_pe(data):
        pe_class, _ = _signify()
        try:
            pe = pe_class(io.BytesIO(data))
            got = pe.get_fingerprints(*funcs.values())
            return {a: got[f().name] for a, f in funcs.items()}
        except Exception:
            pass                         # a damaged PE is hashed as plain bytes
    return {a: f(data).digest() for a, f in funcs.items()}


def uncovered(catalog: Catalog, files: dict[str, bytes]) -> list[str]:
    """The names of ``files`` (name -> bytes) that no catalog member signs."""
    return [name for name, data in files.items() if not catalog.covers(data)]
