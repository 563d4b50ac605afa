"""The ``convrnn`` command line: ``convrnn list|demo|data|train|eval``."""
from __future__ import annotations

import argparse
import sys


def cmd_list(args) -> int:
    import convrnn
    print("cells: ", ", ".join(convrnn.list_cells()))
    print("models:", ", ".join(convrnn.list_models()))
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convrnn", description="Convolutional recurrent networks for vision.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list registered cells and models").set_defaults(fn=cmd_list)
    d = sub.add_parser("demo", help="the showcase: solve fresh mazes with the bundled model and adaptive halting")
    d.add_argument("--out", default="convrnn-demo", help="folder for the HTML report (default: %(default)s)")
    d.add_argument("--quick", action="store_true", help="a much smaller run (for tests)")
    d.set_defaults(fn=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, TypeError, FileNotFoundError) as e:   # user errors: one clear line, no traceback
        print(f"convrnn {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
