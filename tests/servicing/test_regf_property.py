"""Random edit sequences vs a dictionary model; fuzzed input never escapes
as anything but RegfError."""

from __future__ import annotations

import random
import time

from hypothesis import given, settings, strategies as st

from conftest import require_corpus
from servicing.regf import REG_BINARY, REG_DWORD, Hive, RegfError
from servicing.regf.format import upcase

NAMES = st.sampled_from(["a", "B", "ccc", "Ä", "ключ", "x" * 40, "Z9"])
OPS = st.lists(st.tuples(st.sampled_from(["mk", "rm", "set", "del"]),
                         st.lists(NAMES, min_size=1, max_size=3), NAMES,
                         st.binary(max_size=40) | st.integers(0, 20000).map(lambda n: b"q" * n)),
               max_size=25)


@settings(max_examples=30, deadline=None)
@given(OPS)
def test_edits_match_model(tmp_path_factory, ops):
    p = tmp_path_factory.mktemp("prop") / "hive"
    model: dict[tuple, dict] = {(): {}}
    canon = {}                  # upper path -> stored path

    def up(path):
        return tuple(upcase(x) for x in path)

    with Hive.create(p) as h:
        for op, path, name, data in ops:
            u = up(path)
            if op == "mk":
                h.create_key("\\".join(path))
                for i in range(1, len(path) + 1):
                    if up(path[:i]) not in model:
                        model[up(path[:i])] = {}
                        canon[up(path[:i])] = path[:i]
            elif op == "rm":
                if u in model:
                    h.delete_key("\\".join(path))
                    for k in [k for k in model if k[:len(u)] == u]:
                        del model[k]
                        canon.pop(k, None)
            elif op == "set" and u in model:
                t = REG_DWORD if len(data) == 4 else REG_BINARY
                h.key("\\".join(path)).set_value(name, t, data)
                model[u] = {n: v for n, v in model[u].items() if upcase(n) != upcase(name)}
                model[u][name] = (t, data)
            elif op == "del" and u in model:
                vals = {upcase(n): n for n in model[u]}
                if upcase(name) in vals:
                    h.key("\\".join(path)).delete_value(name)
                    del model[u][vals[upcase(name)]]
    got = Hive.open(p).dump()
    want = {"\\".join(canon.get(k, ())) : v for k, v in model.items()}
    assert {upcase(k): {upcase(n): x for n, x in v.items()} for k, v in got.items()} == \
        {upcase(k): {upcase(n): x for n, x in v.items()} for k, v in want.items()}


def test_fuzz_reader_only_raises_regf_error():
    hives = require_corpus()
    rnd = random.Random(1234)
    seeds = [hives / "yarp" / "StringValuesHive", hives / "hivex" / "special",
             hives / "yarp" / "BigDataHive", hives / "python-registry" / "UNICODE_TESTS",
             hives / "regipy" / "BCD"]
    cases = 0
    for seed in seeds:
        blob = seed.read_bytes()
        for _ in range(60):
            b = bytearray(blob)
            mode = rnd.random()
            if mode < 0.15:
                b = b[: rnd.randrange(0, len(b))]
            else:
                for _ in range(rnd.randint(1, 16)):
                    pos = rnd.randrange(4096, len(b)) if rnd.random() < 0.9 else rnd.randrange(0, 512)
                    b[pos] = rnd.randrange(256)
            t0 = time.monotonic()
            try:
                h = Hive.from_bytes(bytes(b))
                for _, k in h.walk():
                    for v in k.values():
                        v.data
                    k.class_name, k.security_descriptor
            except RegfError:
                pass
            assert time.monotonic() - t0 < 5
            cases += 1
    assert cases == 300
