"""Benchmark of the regf engine against hivexsh (``scripts/bench reg``).

Builds (once, cached in bench/work/) a hive of >= 100 MB with >= 500,000
values using our writer, then measures in separate processes (peak RSS from
wait4 rusage of each child):

* ours: open + read one value; open + set 1,000 values + commit; full dump;
* hivexsh: the same 1,000 setval edits + commit in one ``hivexsh -w`` run.

Prints a table and writes bench/results/reg.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "work")
RESULTS = os.path.join(HERE, "results", "reg.json")
BIG = os.path.join(WORK, "big.hive")
NKEYS, NVALS, VSIZE = 500, 1000, 200
EDITS = 1000

CHILD = r'''
import sys, time, json
sys.path.insert(0, %(repo)r)
from servicing.regf import Hive, REG_DWORD
mode, path = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if mode == "read":
    h = Hive.open(path)
    v = h.key("K00250").value("v00500").raw
    assert len(v) == %(vsize)d
elif mode == "edit":
    h = Hive.open(path, write=True)
    k = h.key("K00001")
    t1 = time.perf_counter()
    for i in range(%(edits)d):
        k.set_value("bench%%d" %% i, REG_DWORD, i)
    t2 = time.perf_counter()
    h.commit()
    t3 = time.perf_counter()
    print(json.dumps({"open": t1 - t0, "sets": t2 - t1, "commit": t3 - t2}))
elif mode == "dump":
    n = sum(len(v) for v in Hive.open(path).dump().values())
    assert n >= %(nvals)d
print(json.dumps({"total": time.perf_counter() - t0}))
'''


def build() -> None:
    sys.path.insert(0, os.path.dirname(HERE))
    from servicing.regf import REG_BINARY, Hive
    os.makedirs(WORK, exist_ok=True)
    tmp = BIG + ".building"
    h = Hive.create(tmp, name="BENCH")
    for k in range(NKEYS):
        key = h.create_key("K%05d" % k)
        for v in range(NVALS):
            key.set_value("v%05d" % v, REG_BINARY, bytes([v & 0xFF]) * VSIZE)
    h.commit()
    os.replace(tmp, BIG)


def run_child(argv: list[str], stdin: bytes | None = None) -> tuple[float, int, bytes]:
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if stdin:
        p.stdin.write(stdin)
        p.stdin.close()
    out = p.stdout.read()
    p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    dt = time.perf_counter() - t0
    if p.returncode:
        raise RuntimeError("%s failed (%d)" % (argv[0], p.returncode))
    return dt, ru.ru_maxrss * 1024, out


def main(argv=None) -> int:
    if not os.path.exists(BIG):
        t = time.perf_counter()
        build()
        print("built %s in %.1fs" % (BIG, time.perf_counter() - t))
    size = os.path.getsize(BIG)
    script = CHILD % {"repo": os.path.dirname(HERE), "vsize": VSIZE, "edits": EDITS,
                      "nvals": NKEYS * NVALS}
    py = sys.executable
    res: dict = {"hive_bytes": size, "values": NKEYS * NVALS}
    work = os.path.join(WORK, "edit.hive")
    dt, rss, _ = run_child([py, "-c", script, "read", BIG])
    res["ours_open_read"] = {"s": dt, "rss": rss}
    shutil.copyfile(BIG, work)
    dt, rss, out = run_child([py, "-c", script, "edit", work])
    phases = json.loads(out.decode().splitlines()[0])
    res["ours_edit_commit"] = {"s": dt, "rss": rss, **phases}
    dt, rss, _ = run_child([py, "-c", script, "dump", BIG])
    res["ours_dump"] = {"s": dt, "rss": rss}
    shutil.copyfile(BIG, work)
    cmds = ["cd \\K00001"]
    for i in range(EDITS):
        cmds += ["setval 1", "bench%d" % i, "dword:0x%08x" % i]
    cmds.append("commit")
    t = time.perf_counter()
    dt, rss, _ = run_child(["hivexsh", "-w", work], ("\n".join(cmds) + "\n").encode())
    res["hivexsh_edit_commit"] = {"s": dt, "rss": rss}
    os.unlink(work)
    o, x = res["ours_edit_commit"], res["hivexsh_edit_commit"]
    res["targets"] = {"edit_commit_le_2s": o["s"] <= 2.0, "rss_le_300MB": o["rss"] <= 300e6,
                      "commit_le_hivexsh": o["s"] <= x["s"]}
    print("hive: %.1f MB, %d values" % (size / 1e6, res["values"]))
    print("%-34s %9s %10s" % ("measurement", "seconds", "peak RSS"))
    for name in ("ours_open_read", "ours_edit_commit", "ours_dump", "hivexsh_edit_commit"):
        r = res[name]
        print("%-34s %9.2f %8.0f MB" % (name, r["s"], r["rss"] / 1e6))
    print("ratio ours/hivexsh (open+1000 sets+commit): time %.2f, RSS %.2f"
          % (o["s"] / x["s"], o["rss"] / x["rss"]))
    print("targets:", res["targets"])
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
