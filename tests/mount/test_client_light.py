"""The client side of the CLI stays light: `status`, `mounts`, `commit` and `unmount`
against a live read-write mount import neither pyfuse3, trio nor lxml (they only talk to the
daemon), and a read-only mount daemon never loads lxml (the image XML is not needed to
serve the tree)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import mounted, require_tool
from tests.helpers.env import REPO_ROOT
from tests.helpers.rwmount import RwMount, wimfs_env

HEAVY = ("pyfuse3", "trio", "lxml")

# Runs one CLI command in this interpreter, then prints the heavy top-level packages it
# loaded and the command's exit code.
PROBE = """
import sys
from wimfs.cli import main
rc = main(sys.argv[1:])
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(%r))
print('HEAVY=' + ','.join(heavy))
print('RC=%%d' %% rc)
""" % (HEAVY,)


def _probe(state, *args) -> tuple[set[str], int, str]:
    r = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True,
                       text=True, cwd=REPO_ROOT, env=wimfs_env(state), timeout=120)
    lines = r.stdout.splitlines()
    heavy = next(line for line in lines if line.startswith("HEAVY=")).split("=", 1)[1]
    rc = int(next(line for line in lines if line.startswith("RC=")).split("=", 1)[1])
    return {h for h in heavy.split(",") if h}, rc, r.stdout + r.stderr


@pytest.fixture
def small_wim(tmp_path):
    require_tool("wimlib-imagex")
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    (src / "dir" / "a.txt").write_text("alpha\n")
    w = tmp_path / "small.wim"
    subprocess.run(["wimlib-imagex", "capture", src, w, "small"], check=True,
                   capture_output=True)
    return w


def test_client_commands_import_no_fuse_trio_or_lxml(small_wim, tmp_path):
    state = tmp_path / "state"
    with RwMount(small_wim, tmp_path / "mnt", state) as m:
        (m.mnt / "dir" / "b.txt").write_text("beta\n")
        for args in (["status", m.mnt], ["status", m.mnt, "--json"], ["mounts"],
                     ["commit", m.mnt, "--quiet"], ["unmount", m.mnt, "--commit", "--quiet"]):
            heavy, rc, out = _probe(state, *args)
            assert rc == 0, out
            assert heavy == set(), (args, heavy)
    # The commands really worked: the edit reached the WIM (wimlib reads it back).
    r = subprocess.run(["wimlib-imagex", "dir", small_wim, "1"], capture_output=True, text=True,
                       check=True)
    assert "/dir/b.txt" in r.stdout.splitlines()


def test_read_only_daemon_does_not_load_lxml(small_wim, tmp_path):
    mp = tmp_path / "ro"
    with mounted(small_wim, mp) as proc:
        assert (mp / "dir" / "a.txt").read_text() == "alpha\n"
        with open(f"/proc/{proc.pid}/maps") as f:
            maps = f.read()
        assert "pyfuse3" in maps          # the probe sees the daemon's shared objects
        assert "lxml" not in maps
