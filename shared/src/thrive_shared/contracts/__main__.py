"""`python -m thrive_shared.contracts export [--check] [--out DIR]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from thrive_shared.contracts.export import DEFAULT_OUT, check, write


def main(argv: list[str] | None = None) -> int:
    """Write the generated contract files, or with --check report drift and exit 1."""
    parser = argparse.ArgumentParser(prog="python -m thrive_shared.contracts")
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="write JSON Schemas, AsyncAPI and README")
    export.add_argument("--check", action="store_true", help="only compare; exit 1 on drift")
    export.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: shared/contracts")
    args = parser.parse_args(argv)

    if args.check:
        drift = check(args.out)
        if drift:
            print(drift.summary(), file=sys.stderr)
            return 1
        print(f"contracts up to date in {args.out}")
        return 0
    changed = write(args.out)
    for rel in changed:
        print(f"wrote {args.out / rel}")
    print(f"{len(changed)} file(s) changed in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
