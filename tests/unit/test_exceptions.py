"""Every exception class of wimfs.errors and of servicing, with the exit code the one
mapping (wimfs.errors.exit_code_for) gives it: the README's exit-code table, as code."""

from __future__ import annotations

import builtins
import inspect

import pytest

import servicing.errors as servicing_errors
import servicing.regf.errors as regf_errors
import servicing.registry.hives as registry
import servicing.registry.regfile as regfile
import wimfs.errors as errors
from wimfs.errors import exit_code_for

# Documented codes (README "Exit codes"), written out as numbers on purpose.
EXPECTED = {
    "wimfs.errors": {
        "WimfsError": 1, "UsageError": 2, "WimFormatError": 3, "NotAWimError": 3,
        "UnsupportedWimError": 3, "WimCorruptError": 3, "ImageNotFoundError": 4,
        "PathNotFoundError": 4, "MountError": 5, "DependencyError": 6, "BusyError": 7,
    },
    "servicing.regf.errors": {
        "RegfError": 1, "RegfStateError": 1, "RegfCorruptError": 3,
        "RegfUnsupportedError": 3, "RegfDirtyError": 3, "RegfNotFoundError": 4,
        "KeyNotFoundError": 4, "ValueNotFoundError": 4, "RegfDataError": 2,
    },
    "servicing.registry.regfile": {"RegFileError": 2},
    "servicing.registry.hives": {"RegistryPathError": 4},
    # the codes every servicing command shares (README exit-code table, 8-10 added)
    "servicing.errors": {
        "ServicingError": 1, "NotApplicableError": 8, "RefusedError": 9,
        "NoWindowsError": 9, "UnsupportedWindowsError": 9, "PendingError": 10,
        "TargetNotFoundError": 4, "TargetPathError": 4, "TargetDamagedError": 3,
    },
}
MODULES = {m.__name__: m for m in (errors, regf_errors, regfile, registry, servicing_errors)}


def _own_exceptions(module) -> set[str]:
    return {name for name, obj in vars(module).items()
            if inspect.isclass(obj) and issubclass(obj, BaseException)
            and obj.__module__ == module.__name__}


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_every_class_is_listed(module):
    own = _own_exceptions(MODULES[module])
    assert own <= set(EXPECTED[module])
    assert len(own) >= len(EXPECTED[module]) - 1     # at most the one h/regf adds is absent


@pytest.mark.parametrize("module,name,code",
                         [(m, n, c) for m, t in sorted(EXPECTED.items()) for n, c in t.items()])
def test_exit_code(module, name, code):
    cls = getattr(MODULES[module], name, None)
    if cls is None:
        pytest.skip(f"{module}.{name} arrives with another branch")
    assert exit_code_for(cls("x")) == code


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
