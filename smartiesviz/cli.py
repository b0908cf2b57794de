"""The ``smartiesviz`` command line.

Each command lives in its own module, which exposes ``register(subparsers)``: it adds its parser(s)
and sets ``func`` (called with the parsed namespace, returning an exit code). Command modules import
torch and other heavy dependencies inside ``func`` so ``smartiesviz --help`` stays fast.

Failures: a user mistake (:class:`smartiesviz.errors.UserError`, ``ValueError``, ``KeyError``, an
``OSError`` such as a missing file, a YAML or rasterio error) is printed as one ``error: <message>``
line on stderr with exit status 2; anything else is a bug and keeps its traceback, followed by a
one-line hint. ``--debug`` (or ``SMARTIESVIZ_DEBUG=1``) shows the traceback of user errors too.
Warnings are one ``warning: <message>`` line each (Python's own format, with file, line and source
line, only under ``--debug``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from smartiesviz import __version__

COMMAND_MODULES = (
    "smartiesviz.spectrum.cli",  # sensors
    "smartiesviz.training.cli",  # pretrain, launch
    "smartiesviz.predict.cli",  # embed
    "smartiesviz.predict.task_cli",  # predict
    "smartiesviz.predict.layer_cli",  # layers
    "smartiesviz.tour",  # tour, lab
    "smartiesviz.export_cli",  # export
    "smartiesviz.data.cache_cli",  # cache
)

USER_ERROR_STATUS = 2
BUG_STATUS = 1
BUG_HINT = (
    "smartiesviz: unexpected internal error (a bug, not your input); "
    "please report it with the traceback above"
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser: global options plus every command module's subcommands."""
    parser = argparse.ArgumentParser(
        prog="smartiesviz",
        description="Notebook-first toolkit for SMARTIES, the spectrum-aware multi-sensor model.",
    )
    parser.add_argument("--version", action="version", version=f"smartiesviz {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of every error (anywhere on the line; or SMARTIESVIZ_DEBUG=1)",
    )
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


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exception types that mean a user mistake (bad file, key or value), not a bug.

    YAML and rasterio errors count only when those libraries were imported: an exception of theirs
    cannot exist otherwise, and importing them here would slow every command down.
    """
    # UserError is a ValueError; ImportError: a missing optional dependency (e.g. zarr)
    types: list[type[BaseException]] = [ValueError, KeyError, OSError, ImportError]
    yaml = sys.modules.get("yaml")
    if yaml is not None:
        types.append(yaml.YAMLError)
    rasterio_errors = sys.modules.get("rasterio.errors")
    if rasterio_errors is not None:
        types.append(rasterio_errors.RasterioError)  # RasterioIOError on a truncated GeoTIFF
    return tuple(types)


def format_error(err: BaseException) -> str:
    """One line describing ``err``: its message with line breaks folded into ``; ``."""
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        message = err.args[0]  # str(KeyError) quotes its message
    elif isinstance(err, OSError) and err.strerror and err.filename is not None:
        message = f"{err.filename}: {err.strerror}"  # drops the "[Errno 2]" prefix
    else:
        message = str(err)
    cause = err.__cause__ or err.__context__
    if cause is not None and "previous exception" in message:  # rasterio: the cause names the file
        message = f"{message.split('.')[0]}: {format_error(cause)}"
    parts = [line.strip() for line in message.splitlines() if line.strip()]
    return "; ".join(parts) or type(err).__name__


def _show_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int,
    file: Any = None, line: str | None = None,
) -> None:  # fmt: skip
    """``warnings.showwarning`` for the command line: one ``warning: <message>`` line."""
    text = "; ".join(part.strip() for part in str(message).splitlines() if part.strip())
    try:
        print(f"warning: {text}", file=file or sys.stderr)
    except OSError:  # stderr closed or broken: a warning is not worth failing for
        pass


@contextmanager
def one_line_warnings() -> Iterator[None]:
    """Show warnings as ``warning: <message>`` lines (no file, line number or source line)
    while the block runs; the previous ``warnings.showwarning`` is restored afterwards."""
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        yield
    finally:
        warnings.showwarning = previous


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``smartiesviz`` command; returns its exit status (2 for user errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug is accepted anywhere before a `--` (after which arguments belong to another command)
    end = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:end]
    if debug:
        argv = [a for a in argv[:end] if a != "--debug"] + argv[end:]
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = debug or os.environ.get("SMARTIESVIZ_DEBUG", "") not in ("", "0")
    args.debug = debug  # commands that catch errors themselves re-raise them when set
    if getattr(args, "func", None) is None:
        parser.print_help()
        return USER_ERROR_STATUS
    try:
        if debug:  # --debug keeps Python's own warnings, with their file and line
            return int(args.func(args) or 0)
        with one_line_warnings():
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # silence the final flush
        return 0
    except Exception as err:
        if isinstance(err, user_error_types()):
            if debug:
                traceback.print_exc()
            print(f"error: {format_error(err)}", file=sys.stderr)
            return USER_ERROR_STATUS
        traceback.print_exc()
        print(BUG_HINT, file=sys.stderr)
        return BUG_STATUS


if __name__ == "__main__":
    sys.exit(main())
