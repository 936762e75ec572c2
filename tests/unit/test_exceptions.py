"""Every exception class wimfs and servicing define, with the exit code the one mapping
(wimfs.errors.exit_code_for) gives it: the README's exit-code table, as code. The classes are
discovered by walking both packages, so a new class without a row here fails the test."""

from __future__ import annotations

import builtins
import importlib
import inspect
import pkgutil

import pytest

import servicing
import wimfs
import wimfs.errors as errors
from wimfs.errors import exit_code_for

# Documented codes (README "Exit codes"), written out as numbers on purpose.
EXPECTED = {
    "wimfs.errors": {
        "WimfsError": 1, "UsageError": 2, "WimFormatError": 3, "NotAWimError": 3,
        "UnsupportedWimError": 3, "WimCorruptError": 3, "ImageNotFoundError": 4,
        "PathNotFoundError": 4, "MountError": 5, "DependencyError": 6, "BusyError": 7,
    },
    "wimfs.apply": {"UnsafeImageError": 3},
    "wimfs.capture": {"CaptureError": 1},
    "wimfs.resource": {"BlobHashError": 3},
    "wimfs.overlay.journal": {"JournalError": 5},
    # the path API's errors (an errno for FUSE, a one-line error for commands)
    "wimfs.overlay.errors": {
        "FsError": None, "PathError": None, "PathExistsError": 1,
        "NotADirectoryPathError": 1, "IsADirectoryPathError": 1,
    },
    "servicing.regf.errors": {
        "RegfError": 1, "RegfStateError": 1, "RegfCorruptError": 3,
        "RegfUnsupportedError": 3, "RegfDirtyError": 3, "RegfNotFoundError": 4,
        "KeyNotFoundError": 4, "ValueNotFoundError": 4, "RegfDataError": 2,
    },
    "servicing.registry.regfile": {"RegFileError": 2},
    # driver packages: broken INF, template, catalog or package is bad input data (3)
    "servicing.formats.inf": {"InfError": 3, "InfTemplateError": 3},
    "servicing.formats.catalog": {"CatalogError": 3},
    # Windows Installer: a damaged .msi/.msp is bad input data (3); a product or patch
    # code the image has not registered is "not found" (4)
    "servicing.formats.msi": {"MsiError": 3, "PatchError": 3},
    "servicing.features.msi_apps": {"UnknownProductError": 4, "UnknownPatchError": 4},
    "servicing.features.driver_package": {"PackageError": 3},
    # CBS packages: a bad cabinet or manifest is bad input data (3); unknown names (4)
    "servicing.formats.cab": {"CabError": 3},
    "servicing.formats.cbs_manifest": {"ManifestError": 3},
    "servicing.features.packages": {"PackageNotFoundError": 4},
    "servicing.features.cbs_features": {"FeatureNotFoundError": 4},
    # intl: a malformed or unknown value is a bad command line (2, DISM 87); a valid value
    # this image cannot take is refused (9, DISM 87)
    "servicing.features.intl": {"IntlValueError": 2, "IntlRefusedError": 9},
    # `wimfs dism`: DISM's code (87 by default) and its exit status (NOTES-dism table)
    "servicing.dism.codes": {"DismError": 87},
    "servicing.registry.hives": {"RegistryPathError": 4},
    # Windows PE and edition: a value DISM refuses is bad usage (2, DISM Error 87); a
    # non-PE image is refused (9, DISM Error 50); missing media files are not found (4)
    "servicing.features.winpe": {"NotWinPEError": 9, "PESettingError": 2},
    "servicing.features.edition": {"ProductKeyError": 2},
    "servicing.features.pe_media": {"MediaSourceError": 4, "IsoLimitError": 9,
                                    "IsoSourceError": 3, "IsoToolError": 1},
    # first-boot actions: a command a batch file cannot hold is bad usage (2)
    "servicing.formats.cmdline": {"CommandLineError": 2},
    "servicing.features.firstboot": {"FirstbootExistsError": 1, "FirstbootNotFoundError": 4},
    # an answer file that cannot be used (not XML, hostile, wrong namespace): bad input (3)
    "servicing.formats.unattend": {"UnattendError": 3},
    # the codes every servicing command shares (README exit-code table, 8-10 added)
    "servicing.errors": {
        "ServicingError": 1, "NotApplicableError": 8, "RefusedError": 9,
        "NoWindowsError": 9, "UnsupportedWindowsError": 9, "PendingError": 10,
        "TargetNotFoundError": 4, "TargetPathError": 4, "TargetDamagedError": 3,
    },
}


# classes whose constructor takes more than a message
CONSTRUCT = {"InfError": ("x.inf", "bad line", 3), "InfTemplateError": ("x.inx", "template"),
             "PackageError": ("x.inf", "missing file")}


def _all_exception_classes() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for pkg in (wimfs, servicing):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            own = {name for name, obj in vars(module).items()
                   if inspect.isclass(obj) and issubclass(obj, BaseException)
                   and obj.__module__ == module.__name__}
            if own:
                found[module.__name__] = own
    return found


def test_every_class_is_listed():
    found = _all_exception_classes()
    assert {m: sorted(c) for m, c in found.items()} == \
        {m: sorted(c) for m, c in EXPECTED.items()}


@pytest.mark.parametrize("module,name,code",
                         [(m, n, c) for m, t in sorted(EXPECTED.items()) for n, c in t.items()
                          if c is not None])
def test_exit_code(module, name, code):
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, errors.WimfsError), f"{name} is outside the one error model"
    exc = cls(*CONSTRUCT.get(name, ("x",)))
    assert exit_code_for(exc) == code


def test_path_errors_carry_errno():
    from wimfs.overlay.errors import FsError, PathError
    e = FsError(2)
    assert e.errno == 2 and exit_code_for(e) == 4        # an OSError ENOENT: not found
    p = PathError(20, "Windows/x")
    assert isinstance(p, errors.WimfsError) and "Windows/x" in str(p)


def test_builtin_exceptions():
    assert exit_code_for(FileNotFoundError(2, "No such file or directory", "/x")) == 4
    assert exit_code_for(PermissionError(13, "Permission denied", "/x")) == 1
    assert exit_code_for(OSError(28, "No space left on device")) == 1
    assert exit_code_for(KeyboardInterrupt()) == 130
    assert exit_code_for(ValueError("a bug")) == 1
    assert exit_code_for(builtins.IndexError()) == 1


def test_messages_are_one_line():
    assert errors.message_for(FileNotFoundError(2, "No such file or directory", "/x/y")) \
        == "No such file or directory: /x/y"
    assert errors.message_for(errors.UsageError("bad\nvalue")) == "bad value"
    assert errors.message_for(ValueError("oops")) == \
        "internal error: ValueError: oops (rerun with --debug)"
    assert errors.message_for(ValueError("oops"), debug=True) == \
        "internal error: ValueError: oops"
