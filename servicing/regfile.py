"""Old import path of :mod:`servicing.registry.regfile`."""

from servicing.registry.regfile import *  # noqa: F401,F403
from servicing.registry.regfile import RegFileError, decode_text, encode_file, format_reg, parse  # noqa: F401
