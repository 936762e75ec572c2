"""Pure, synchronous on-disk structures of the WIM format.

Nothing here does I/O beyond callbacks it is given, and nothing imports
pyfuse3 or trio (tests/unit/test_layers.py asserts it).
"""
