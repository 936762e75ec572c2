"""Pure-Python reader and writer of Windows registry hives (regf).

Public API::

    from servicing.regf import Hive, REG_DWORD
    with Hive.open(path, write=True) as h:       # committed atomically on exit
        k = h.create_key(r"Foo\\Bar")
        k.set_value("X", REG_DWORD, 5)

In memory (e.g. a hive inside a WIM image)::

    with Hive.from_bytes(data, write=True, logs=[log1, log2]) as h:
        h.create_key("Foo")
    if h.changed:
        data = h.to_bytes()

See :mod:`servicing.regf.hive` (the facade), :mod:`servicing.regf.format`
(structures), :mod:`servicing.regf.values` (the value codec) and
:mod:`servicing.regf.logs` (transaction log replay).
"""

from .errors import (KeyNotFoundError, RegfCorruptError, RegfDataError, RegfDirtyError,
                     RegfError, RegfNotFoundError, RegfStateError, RegfUnsupportedError,
                     ValueNotFoundError)
from .format import (REG_BINARY, REG_DWORD, REG_DWORD_BIG_ENDIAN, REG_EXPAND_SZ,
                     REG_FULL_RESOURCE_DESCRIPTOR, REG_LINK, REG_MULTI_SZ, REG_NONE,
                     REG_QWORD, REG_RESOURCE_LIST, REG_RESOURCE_REQUIREMENTS_LIST, REG_SZ,
                     TYPE_BY_NAME, TYPE_NAMES)
from .hive import Hive, Key, Value
from .values import decode_value, encode_value, parse_value_text

#: former names of the value codec functions
encode_data, decode_data = encode_value, decode_value

__all__ = [
    "Hive", "Key", "Value", "encode_value", "decode_value", "parse_value_text",
    "encode_data", "decode_data",
    "RegfError", "RegfCorruptError", "RegfUnsupportedError", "RegfDirtyError", "RegfDataError",
    "RegfNotFoundError", "KeyNotFoundError", "ValueNotFoundError", "RegfStateError",
    "REG_NONE", "REG_SZ", "REG_EXPAND_SZ", "REG_BINARY", "REG_DWORD", "REG_DWORD_BIG_ENDIAN",
    "REG_LINK", "REG_MULTI_SZ", "REG_RESOURCE_LIST", "REG_FULL_RESOURCE_DESCRIPTOR",
    "REG_RESOURCE_REQUIREMENTS_LIST", "REG_QWORD", "TYPE_NAMES", "TYPE_BY_NAME",
]
