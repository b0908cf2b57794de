"""The ``smartiesviz`` command line.

Each command lives in its own module, which exposes ``register(subparsers)``: it adds its parser(s)
and sets ``func`` (called with the parsed namespace, returning an exit code). Command modules import
their heavy dependencies inside ``func`` so ``smartiesviz --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMAND_MODULES = (
    "smartiesviz.spectrum.cli",  # sensors
    "smartiesviz.training.cli",  # pretrain, launch
    "smartiesviz.predict.cli",  # embed
    "smartiesviz.tour",  # tour, lab
    "smartiesviz.export_cli",  # export
)


def build_parser() -> argparse.ArgumentParser:
    from smartiesviz import __version__

    parser = argparse.ArgumentParser(
        prog="smartiesviz",
        description="Notebook-first toolkit for SMARTIES, the spectrum-aware multi-sensor model.",
    )
    parser.add_argument("--version", action="version", version=f"smartiesviz {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:  # the module exists but one of its imports is missing
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
