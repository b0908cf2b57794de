"""Execute notebooks in place and store their outputs the way the repository keeps them.

    python scripts/execute_notebooks.py tutorials/*.ipynb notebooks/*.ipynb

Each notebook runs top to bottom in a fresh ``python3`` kernel with its own folder as the working
directory (as nbval runs it). Then, so the stored notebook renders on GitHub and stays small:

* the widget state (``metadata.widgets``) is removed, and each live widget's output keeps only a
  one-line text placeholder (the static ``.figure()`` output next to it shows the state);
* JavaScript loaders and HoloViews/Panel plumbing (inline bundles of several MB, styles,
  logos) are dropped: they render nothing without a live kernel;
* execution timing metadata is removed.

Prints the wall time of each notebook; exits 1 if any notebook failed (the failing notebook is left
unchanged on disk).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from smartiesviz.tour import clean_notebook


def execute(path: Path, timeout: int = 600) -> tuple[float, str | None]:
    """Run ``path`` in place; returns (wall seconds, error text or None)."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as err:
        return time.perf_counter() - start, str(err).strip().splitlines()[-1]
    seconds = time.perf_counter() - start
    nbformat.write(clean_notebook(nb), path)
    return seconds, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--clean-only", action="store_true", help="strip without executing")
    args = parser.parse_args(argv)
    failed = 0
    total = 0.0
    for path in args.notebooks:
        if args.clean_only:
            nbformat.write(clean_notebook(nbformat.read(path, as_version=4)), path)
            continue
        seconds, error = execute(path, args.timeout)
        total += seconds
        print(f"{'ok  ' if error is None else 'FAIL'} {path}  {seconds:.1f} s", flush=True)
        if error:
            failed += 1
            print(f"     {error}", flush=True)
    if not args.clean_only:
        print(f"{len(args.notebooks) - failed}/{len(args.notebooks)} notebooks ok in {total:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
