"""XPRESS, LZX and LZMS through libwim's public compression API (ctypes).

Only the codecs of libwim are used: wimlib_create_{de,}compressor,
wimlib_{de,}compress and wimlib_free_{de,}compressor. ctypes releases the GIL
around each call, so worker threads decompress in parallel. Codec objects are
not thread-safe; `Codecs` keeps one per thread and (type, chunk size).
"""

from __future__ import annotations

import ctypes
import threading

from wimfs.errors import DependencyError, WimCorruptError
from wimfs.format.structs import COMPRESSION_NAMES, COMPRESSION_NONE

_lib = None
_lib_lock = threading.Lock()
LIBWIM_NAMES = ("libwim.so.15", "libwim.so")


def libwim() -> ctypes.CDLL:
    global _lib
    if _lib is not None:
        return _lib
    with _lib_lock:
        if _lib is None:
            lib = None
            # find_library runs `ldconfig -p` (a fork and an exec): only when the
            # usual names are not found.
            for name in (*LIBWIM_NAMES, None):
                if name is None:
                    from ctypes.util import find_library
                    name = find_library("wim")
                    if not name:
                        break
                try:
                    lib = ctypes.CDLL(name)
                    break
                except OSError:
                    continue
            if lib is None:
                raise DependencyError("libwim is not installed; install it with "
                                      "'apt-get install libwim15'")
            vp, sz = ctypes.c_void_p, ctypes.c_size_t
            lib.wimlib_create_decompressor.argtypes = [ctypes.c_int, sz, ctypes.POINTER(vp)]
            lib.wimlib_create_decompressor.restype = ctypes.c_int
            # The output is passed as an address (of a bytearray we allocate): a
            # `(c_char * n).from_buffer` per call costs a ctypes array type per distinct
            # size (cached by ctypes for good) and ~12 us a call.
            lib.wimlib_decompress.argtypes = [ctypes.c_char_p, sz, sz, sz, vp]
            lib.wimlib_decompress.restype = ctypes.c_int
            lib.wimlib_free_decompressor.argtypes = [vp]
            lib.wimlib_free_decompressor.restype = None
            lib.wimlib_create_compressor.argtypes = [ctypes.c_int, sz, ctypes.c_uint,
                                                     ctypes.POINTER(vp)]
            lib.wimlib_create_compressor.restype = ctypes.c_int
            lib.wimlib_compress.argtypes = [ctypes.c_char_p, sz, vp, sz, vp]
            lib.wimlib_compress.restype = sz
            lib.wimlib_free_compressor.argtypes = [vp]
            lib.wimlib_free_compressor.restype = None
            lib.wimlib_get_compressor_needed_memory.argtypes = [ctypes.c_int, sz, ctypes.c_uint]
            lib.wimlib_get_compressor_needed_memory.restype = ctypes.c_uint64
            _lib = lib
    return _lib


class Decompressor:
    def __init__(self, ctype: int, max_block_size: int):
        self.lib = libwim()
        self.ctype = ctype
        self.max_block_size = max_block_size
        self._h = ctypes.c_void_p()
        rc = self.lib.wimlib_create_decompressor(ctype, max_block_size, ctypes.byref(self._h))
        if rc != 0:
            raise WimCorruptError(f"cannot create {COMPRESSION_NAMES.get(ctype, ctype)} "
                                  f"decompressor for chunk size {max_block_size} (code {rc})")

    def decompress(self, data: bytes, usize: int) -> bytearray:
        # Decompress straight into the buffer we hand out: no zero-fill-and-copy.
        out = bytearray(usize)
        if not usize:
            return out
        pin = ctypes.c_char.from_buffer(out)    # holds the buffer export during the call
        if self.lib.wimlib_decompress(data, len(data), ctypes.addressof(pin), usize,
                                      self._h) != 0:
            raise WimCorruptError("invalid compressed data")
        del pin
        return out

    def __del__(self):
        h, self._h = getattr(self, "_h", None), None
        if h:
            self.lib.wimlib_free_decompressor(h)


class Compressor:
    def __init__(self, ctype: int, max_block_size: int, level: int = 0):
        self.lib = libwim()
        self.ctype = ctype
        self._h = ctypes.c_void_p()
        rc = self.lib.wimlib_create_compressor(ctype, max_block_size, level,
                                               ctypes.byref(self._h))
        if rc != 0:
            raise ValueError(f"cannot create {COMPRESSION_NAMES.get(ctype, ctype)} compressor "
                             f"for chunk size {max_block_size} (code {rc})")
        self._out = ctypes.create_string_buffer(max_block_size)

    def compress(self, data: bytes) -> bytes | None:
        """Compressed bytes, or None when the chunk does not shrink (store it raw)."""
        avail = len(data) - 1
        if avail <= 0:
            return None
        n = self.lib.wimlib_compress(data, len(data), self._out, avail, self._h)
        return ctypes.string_at(self._out, n) if n else None    # (one copy, of n bytes)

    def __del__(self):
        h, self._h = getattr(self, "_h", None), None
        if h:
            self.lib.wimlib_free_compressor(h)


class Codecs:
    """Per-thread cache of decompressors."""

    def __init__(self) -> None:
        self._local = threading.local()

    def decompressor(self, ctype: int, chunk_size: int) -> Decompressor:
        cache = getattr(self._local, "d", None)
        if cache is None:
            cache = self._local.d = {}
        key = (ctype, chunk_size)
        d = cache.get(key)
        if d is None:
            d = cache[key] = Decompressor(ctype, chunk_size)
        return d

    def decompress(self, ctype: int, chunk_size: int, data: bytes, usize: int) -> bytes:
        if ctype == COMPRESSION_NONE:
            return data
        return self.decompressor(ctype, chunk_size).decompress(data, usize)
