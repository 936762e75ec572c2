"""Random edit sequences vs a dictionary model; fuzzed input never escapes
as anything but RegfError."""

from __future__ import annotations

import random
import time

from hypothesis import given, settings, strategies as st

from tests.servicing.conftest import require_corpus
from servicing.regf import REG_BINARY, REG_DWORD, Hive, RegfError
from servicing.regf.format import upcase

NAMES = st.sampled_from(["a", "B", "ccc", "Ä", "ключ", "x" * 40, "Z9"])
OPS = st.lists(st.tuples(st.sampled_from(["mk", "rm", "set", "del"]),
                         st.lists(NAMES, min_size=1, max_size=3), NAMES,
                         st.binary(max_size=40) | st.integers(0, 20000).map(lambda n: b"q" * n)),
               max_size=25)


class Model:
    """The expected tree: {upper-cased key path: {value name: (type, raw)}}."""

    def __init__(self):
        self.keys: dict[tuple, dict] = {(): {}}
        self.canon: dict[tuple, tuple] = {}         # upper path -> stored path

    @staticmethod
    def up(path) -> tuple:
        return tuple(upcase(x) for x in path)

    def apply(self, h: Hive, op: str, path: list[str], name: str, data: bytes) -> None:
        """Apply one random operation to the hive *h* and to the model."""
        model, u = self.keys, self.up(path)
        if op == "mk":
            h.create_key("\\".join(path))
            for i in range(1, len(path) + 1):
                if self.up(path[:i]) not in model:
                    model[self.up(path[:i])] = {}
                    self.canon[self.up(path[:i])] = path[:i]
        elif op == "rm":
            if u in model:
                h.delete_key("\\".join(path))
                for k in [k for k in model if k[:len(u)] == u]:
                    del model[k]
                    self.canon.pop(k, None)
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

    def check(self, got: dict) -> None:
        """*got* (a hive dump) holds exactly the model's keys and values."""
        want = {"\\".join(self.canon.get(k, ())): v for k, v in self.keys.items()}
        assert {upcase(k): {upcase(n): x for n, x in v.items()} for k, v in got.items()} == \
            {upcase(k): {upcase(n): x for n, x in v.items()} for k, v in want.items()}


@settings(max_examples=30, deadline=None)
@given(OPS)
def test_edits_match_model(tmp_path_factory, ops):
    p = tmp_path_factory.mktemp("prop") / "hive"
    model = Model()
    with Hive.create(p) as h:
        for op in ops:
            model.apply(h, *op)
    model.check(Hive.open(p).dump())


@settings(max_examples=30, deadline=None)
@given(OPS, st.integers(1, 5))
def test_in_memory_edits_match_model(ops, rounds):
    """The same on a hive held in memory, passed through to_bytes/from_bytes
    *rounds* times along the way."""
    model = Model()
    blob = Hive.create(None).to_bytes()
    step = len(ops) // rounds + 1
    for i in range(0, max(len(ops), 1), step):
        with Hive.from_bytes(blob, write=True) as h:
            for op in ops[i:i + step]:
                model.apply(h, *op)
        blob = h.to_bytes()
        model.check(Hive.from_bytes(blob).dump())


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
