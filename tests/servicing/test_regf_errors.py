"""Every regf exception: its exit code, errno and base classes (the CLI maps
exceptions to exit codes through ``exit_code``; callers catch builtins)."""

from __future__ import annotations

import errno
import inspect

import pytest

from servicing import regf
from servicing.regf import errors as E
from wimfs.errors import WimfsError

# class -> (exit code, errno, direct bases)
EXPECTED = {
    E.RegfError: (1, errno.EIO, (WimfsError,)),
    E.RegfCorruptError: (3, errno.EIO, (E.RegfError,)),
    E.RegfUnsupportedError: (3, errno.EOPNOTSUPP, (E.RegfCorruptError,)),
    E.RegfDirtyError: (3, errno.EIO, (E.RegfError,)),
    E.RegfNotFoundError: (4, errno.ENOENT, (E.RegfError, FileNotFoundError)),
    E.KeyNotFoundError: (4, errno.ENOENT, (E.RegfNotFoundError,)),
    E.ValueNotFoundError: (4, errno.ENOENT, (E.RegfNotFoundError,)),
    E.RegfStateError: (1, errno.EIO, (E.RegfError,)),
    E.RegfDataError: (2, errno.EIO, (E.RegfError, ValueError)),
}


def test_every_exception_listed():
    found = {c for _, c in inspect.getmembers(E, inspect.isclass)
             if issubclass(c, BaseException) and c.__module__ == E.__name__}
    assert found == set(EXPECTED)
    assert all(getattr(regf, c.__name__) is c for c in found)       # re-exported


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_exit_code_errno_and_bases(cls):
    code, eno, bases = EXPECTED[cls]
    assert cls.__bases__ == bases
    e = cls("one line")
    assert (e.exit_code, e.errno, str(e)) == (code, eno, "one line")
    assert isinstance(e, WimfsError)
    assert isinstance(e, FileNotFoundError) == (code == 4)


def test_missing_hive_file_is_not_found(tmp_path):
    with pytest.raises(FileNotFoundError) as ei:
        regf.Hive.open(tmp_path / "nope")
    assert type(ei.value) is E.RegfNotFoundError and ei.value.exit_code == 4
