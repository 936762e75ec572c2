"""Dispatcher: `python -m bench [SUITE|all] [suite options]` (default: all)."""

from __future__ import annotations

import importlib
import importlib.util
import sys

from bench import SUITES

USAGE = f"""usage: scripts/bench [SUITE] [options]

SUITE is one of: {", ".join(SUITES)}, all (default).
Options after SUITE go to the suite (e.g. scripts/bench mount --quick --repeat 1);
`scripts/bench SUITE --help` lists them. `all` passes its options to every suite."""


def _available(name: str) -> bool:
    return importlib.util.find_spec(f"bench.{name}") is not None


def run_suite(name: str, argv: list[str]) -> int:
    module = importlib.import_module(f"bench.{name}")
    return int(module.main(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    suite = "all"
    if argv and not argv[0].startswith("-"):
        suite = argv.pop(0)
    if suite == "all":
        names = [s for s in SUITES if _available(s)]
        rc = 0
        for name in names:
            print(f"== bench {name} ==", flush=True)
            rc = max(rc, run_suite(name, argv))
        return rc
    if suite not in SUITES:
        print(f"bench: unknown suite {suite!r}\n{USAGE}", file=sys.stderr)
        return 2
    if not _available(suite):
        print(f"bench: suite {suite!r} is not implemented yet (no bench/{suite}.py)",
              file=sys.stderr)
        return 2
    return run_suite(suite, argv)


if __name__ == "__main__":
    sys.exit(main())
