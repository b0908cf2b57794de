"""``smartiesviz tour`` and ``smartiesviz lab``: the tutorials, run headlessly or opened in JupyterLab.

``tour`` executes every tutorial notebook top to bottom in a fresh kernel (nbclient), then writes an
HTML report whose figures are embedded as data URLs, so the report is one self-contained folder:

    DIR/index.html            summary table + every figure of every tutorial
    DIR/<notebook>.html       each executed tutorial rendered by nbconvert (images embedded)
    DIR/figures/<nb>-<k>.png  the figures as files (the README gallery is built from these)
    DIR/logs/<notebook>.log   the kernel process's own stdout/stderr

Jupyter and nbconvert are imported inside the command functions so ``smartiesviz --help`` stays fast.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import html
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smartiesviz import __version__

DEFAULT_OUT = "smartiesviz-tour"
CELL_TIMEOUT_S = 600


@dataclass
class NotebookResult:
    """Outcome of executing one notebook.

    Attributes:
        path: The source notebook.
        seconds: Wall time of the execution (kernel start included).
        error: ``None`` on success, else the first lines of the failing cell's error.
        figures: PNG images (raw bytes) in output order.
        title: The notebook's first heading.
    """

    path: Path
    seconds: float
    error: str | None = None
    figures: list[bytes] = field(default_factory=list)
    title: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


def find_tutorials(directory: str | os.PathLike[str] | None = None) -> Path:
    """Locate the folder holding the numbered tutorial notebooks.

    Args:
        directory: An explicit folder. When ``None``: ``./tutorials`` if it holds notebooks, else
            the ``tutorials/`` folder of the source checkout this package was installed from.

    Returns:
        The folder path.

    Raises:
        FileNotFoundError: No folder with tutorial notebooks was found (names the places tried).
    """
    if directory is not None:
        candidates = [Path(directory)]
    else:
        package_root = Path(__file__).resolve().parent.parent
        candidates = [Path.cwd() / "tutorials", package_root / "tutorials"]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("[0-9]*.ipynb")):
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"no tutorial notebooks (files like 01-*.ipynb) found in: {tried}. "
        "Run from a smartiesviz checkout or pass --tutorials DIR."
    )


def list_notebooks(directory: Path, only: list[str] | None = None) -> list[Path]:
    """Numbered notebooks of ``directory`` in order, optionally those whose name contains a filter."""
    notebooks = sorted(directory.glob("[0-9]*.ipynb"))
    if only:
        notebooks = [nb for nb in notebooks if any(key in nb.name for key in only)]
        if not notebooks:
            raise FileNotFoundError(f"no notebook in {directory} matches {only}")
    return notebooks


def _title(nb: Any, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return fallback


def _figures(nb: Any) -> list[bytes]:
    images = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                images.append(base64.b64decode(data["image/png"]))
    return images


def execute_notebook(
    path: Path, workdir: Path, timeout: int = CELL_TIMEOUT_S, log_path: Path | None = None
) -> tuple[Any, float, str | None]:
    """Execute a notebook in a fresh ``python3`` kernel running this interpreter.

    Args:
        path: The notebook file (left unchanged).
        workdir: The kernel's working directory; its temporary directory (``TMPDIR``) is
            ``workdir/.tmp``, so whatever the notebook leaves behind stays inside ``workdir``.
        timeout: Seconds allowed per cell.
        log_path: Where the kernel process's own stdout/stderr go (default
            ``workdir/kernel.log``); cell outputs are in the notebook.

    Returns:
        ``(executed notebook, wall seconds, error or None)``; the notebook keeps the outputs of
        every cell that ran, also when a cell failed.
    """
    import nbformat  # lazy: Jupyter execution stack; `smartiesviz tour --help` stays fast
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    scratch = workdir / ".tmp"
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(scratch)}
    start = time.perf_counter()
    error = None
    try:
        with open(log_path or workdir / "kernel.log", "w") as log:
            client.execute(stdout=log, stderr=log, env=env)
    except (CellExecutionError, CellTimeoutError, DeadKernelError, RuntimeError) as err:
        lines = [line for line in str(err).strip().splitlines() if line.strip()]
        error = "\n".join(lines[-3:]) if lines else type(err).__name__
    return nb, time.perf_counter() - start, error


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
LOADER_MIMES = (
    "application/vnd.holoviews_load.v0+json",
    "application/vnd.holoviews_exec.v0+json",
    "application/vnd.bokehjs_load.v0+json",
    "application/vnd.bokehjs_exec.v0+json",
)
# HoloViews/Panel plumbing that renders nothing outside a live kernel (styles, logo, embed script)
LOADER_HTML_MARKERS = ('type="esms-options"', 'class="logo-block"', "data-root-id")
MAX_JS_BYTES = 10_000


def _widget_placeholder(output: dict) -> dict | None:
    """A widget output reduced to a one-line text, or ``None`` for progress bars (dropped)."""
    data = output["data"]
    text = data.get("text/plain", "")
    if isinstance(text, list):
        text = "".join(text)
    match = re.match(r"^([A-Za-z_]\w*)\(", text)
    if match is None:  # tqdm progress bars and other transient widgets
        return None
    data.pop(WIDGET_MIME, None)
    data["text/plain"] = (
        f"[{match.group(1)}: live widget, shown when the notebook runs in JupyterLab]"
    )
    return output


def _is_loader(output: dict) -> bool:
    data = output.get("data", {})
    if any(m in data for m in LOADER_MIMES):
        return True
    js = data.get("application/javascript", "")
    if len("".join(js) if isinstance(js, list) else js) > MAX_JS_BYTES:
        return True
    page = data.get("text/html", "")
    page = "".join(page) if isinstance(page, list) else page
    return "image/png" not in data and any(marker in page for marker in LOADER_HTML_MARKERS)


def clean_notebook(nb: Any) -> Any:
    """Prepare an executed notebook for storage or display without a kernel (in place).

    Removes the widget state (``metadata.widgets``) and timing metadata, reduces each live
    widget's output to a one-line text placeholder (progress bars are dropped), and drops
    JavaScript loaders and HoloViews/Panel plumbing, which render nothing without a kernel.

    Returns:
        ``nb``.
    """
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.outputs:
            if output.get("output_type") in ("display_data", "execute_result"):
                if _is_loader(output):
                    continue
                if WIDGET_MIME in output.get("data", {}):
                    output = _widget_placeholder(output)
                    if output is None:
                        continue
            outputs.append(output)
        cell.outputs = outputs
    return nb


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1d2330;padding:0 1rem}h1{margin-bottom:.2rem}table{border-collapse:collapse;margin:1rem 0}
td,th{border-bottom:1px solid #dde;padding:.35rem .8rem;text-align:left}.ok{color:#1a7f37}
.fail{color:#b42318}section{margin:2.5rem 0}img{max-width:100%;border:1px solid #eee;margin:.5rem 0}
pre{background:#fff4f4;padding:.6rem;white-space:pre-wrap}.muted{color:#667}
"""


def write_report(results: list[NotebookResult], out: Path, total_s: float) -> Path:
    """Write ``index.html`` (figures embedded as data URLs) and ``figures/*.png``.

    Args:
        results: One entry per executed notebook.
        out: The report folder (created).
        total_s: Wall time of the whole tour.

    Returns:
        The path of ``index.html``.
    """
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    rows, sections = [], []
    for result in results:
        stem = result.path.stem
        status = '<span class="ok">ok</span>' if result.ok else '<span class="fail">FAILED</span>'
        rows.append(
            f'<tr><td><a href="#{stem}">{html.escape(stem)}</a></td><td>{status}</td>'
            f"<td>{result.seconds:.1f} s</td><td>{len(result.figures)}</td>"
            f'<td><a href="{html.escape(stem)}.html">notebook</a></td></tr>'
        )
        images = []
        for k, png in enumerate(result.figures, start=1):
            (fig_dir / f"{stem}-{k}.png").write_bytes(png)
            data = base64.b64encode(png).decode("ascii")
            images.append(
                f'<img alt="{html.escape(stem)} figure {k}" src="data:image/png;base64,{data}">'
            )
        error = f"<pre>{html.escape(result.error)}</pre>" if result.error else ""
        sections.append(
            f'<section id="{html.escape(stem)}"><h2>{html.escape(result.title or stem)}</h2>'
            f'<p class="muted">{html.escape(result.path.name)} · {result.seconds:.1f} s</p>'
            f"{error}{''.join(images)}</section>"
        )
    n_ok = sum(r.ok for r in results)
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>smartiesviz tour</title><style>{_CSS}</style></head><body>"
        "<h1>smartiesviz tour</h1>"
        f"<p class='muted'>smartiesviz {__version__} · {n_ok}/{len(results)} tutorials ran · "
        f"{total_s:.1f} s in all · {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}</p>"
        "<table><tr><th>tutorial</th><th>status</th><th>wall time</th><th>figures</th><th></th></tr>"
        f"{''.join(rows)}</table>{''.join(sections)}</body></html>"
    )
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def _write_notebook_html(nb: Any, target: Path) -> None:
    from nbconvert import HTMLExporter  # lazy: Jupyter export stack; only when a report is written

    exporter = HTMLExporter(embed_images=True)
    body, _ = exporter.from_notebook_node(nb)
    target.write_text(body, encoding="utf-8")


def run_tour(
    out: str | os.PathLike[str] = DEFAULT_OUT,
    tutorials: str | os.PathLike[str] | None = None,
    only: list[str] | None = None,
    timeout: int = CELL_TIMEOUT_S,
    echo: bool = True,
) -> tuple[Path, list[NotebookResult]]:
    """Execute the tutorials one after another and write the HTML report.

    Each notebook runs in a fresh kernel whose working and temporary directories are a scratch
    folder inside ``out`` (removed afterwards): the tutorials folder is never modified and the
    tour writes nowhere but ``out`` (and the shared sample cache).

    Args:
        out: The report folder.
        tutorials: The folder of numbered notebooks (see :func:`find_tutorials`).
        only: Keep the notebooks whose file name contains one of these strings.
        timeout: Seconds allowed per cell.
        echo: Print one line per notebook as it finishes.

    Returns:
        ``(path of index.html, results)``.
    """
    out_dir = Path(out).resolve()
    notebooks = list_notebooks(find_tutorials(tutorials), only)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = out_dir / "figures"
    if figures.is_dir():
        shutil.rmtree(figures)
    results = []
    tour_start = time.perf_counter()
    for path in notebooks:
        log_path = out_dir / "logs" / f"{path.stem}.log"
        log_path.parent.mkdir(exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".work-{path.stem[:2]}-", dir=out_dir))
        try:
            nb, seconds, error = execute_notebook(path, work, timeout, log_path)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        clean_notebook(nb)
        result = NotebookResult(path, seconds, error, _figures(nb), _title(nb, path.stem))
        _write_notebook_html(nb, out_dir / f"{path.stem}.html")
        results.append(result)
        if echo:
            status = "ok  " if result.ok else "FAIL"
            print(
                f"{status} {path.stem:<40} {seconds:6.1f} s  {len(result.figures):2d} figures",
                flush=True,
            )
            if error:
                print("     " + error.replace("\n", "\n     "), flush=True)
    index = write_report(results, out_dir, time.perf_counter() - tour_start)
    return index, results


def _tour_command(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    index, results = run_tour(args.out, args.tutorials, args.only, args.timeout)
    n_fail = sum(not r.ok for r in results)
    print(
        f"{len(results) - n_fail}/{len(results)} tutorials ran in "
        f"{time.perf_counter() - start:.1f} s; report: {index}",
        flush=True,
    )
    return 1 if n_fail else 0


def _lab_command(args: argparse.Namespace) -> int:
    folder = find_tutorials(args.tutorials)
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={folder.parent}"]
    if args.port:
        command.append(f"--port={args.port}")
    if args.no_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers often run as root
        command.append("--allow-root")
    first = list_notebooks(folder)
    command.append(str(first[0] if first else folder))
    print("starting:", " ".join(command), flush=True)
    return run_in_group(command)


def _child_setup() -> None:  # runs in the child between fork and exec
    os.setpgid(0, 0)
    if sys.platform.startswith(
        "linux"
    ):  # PR_SET_PDEATHSIG: SIGTERM even if the parent is killed -9
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class _Stopped(Exception):
    """Raised by the signal handler of :func:`run_in_group` to leave the wait."""


def run_in_group(command: list[str], grace_s: float = 10.0) -> int:
    """Run ``command`` in its own process group that dies with this process.

    SIGTERM, SIGINT (Ctrl+C) and SIGHUP stop the group with SIGTERM (JupyterLab then shuts its
    kernels down); whatever is left of the group ``grace_s`` seconds later, or when the command
    ends or this process leaves for any other reason, is killed. Returns the command's exit
    status, or 0 when stopped by a signal.
    """
    if os.name != "posix":
        try:
            return subprocess.call(command)
        except KeyboardInterrupt:
            return 0
    proc = subprocess.Popen(command, preexec_fn=_child_setup)  # noqa: PLW1509 - see _child_setup
    stopped: list[int] = []

    def stop(signum: int, _frame: Any) -> None:
        _kill_group(proc.pid, signal.SIGTERM)
        if not stopped:
            stopped.append(signum)
            raise _Stopped

    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {sig: signal.signal(sig, stop) for sig in handled}
    try:
        try:
            status = proc.wait()
        except _Stopped:
            status = 0
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace_s)
    finally:
        _kill_group(proc.pid, signal.SIGKILL)
        proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def register(subparsers: Any) -> None:
    """Add the ``tour`` and ``lab`` commands to the ``smartiesviz`` parser."""
    tour = subparsers.add_parser(
        "tour",
        help="run the tutorials headlessly and write an HTML report with their figures",
        description="Execute tutorials/*.ipynb in fresh kernels and write DIR/index.html.",
    )
    tour.add_argument(
        "--out", default=DEFAULT_OUT, help=f"report folder (default ./{DEFAULT_OUT}/)"
    )
    tour.add_argument("--tutorials", default=None, help="folder of the notebooks (default: found)")
    tour.add_argument(
        "--only", nargs="+", metavar="NAME", help="run the notebooks whose name contains NAME"
    )
    tour.add_argument(
        "--timeout", type=int, default=CELL_TIMEOUT_S, help="seconds allowed per cell (default 600)"
    )
    tour.set_defaults(func=_tour_command)

    lab = subparsers.add_parser("lab", help="open JupyterLab on the tutorials")
    lab.add_argument("--tutorials", default=None, help="folder of the notebooks (default: found)")
    lab.add_argument("--port", type=int, default=None, help="port for the Jupyter server")
    lab.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    lab.set_defaults(func=_lab_command)
