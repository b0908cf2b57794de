"""Widget chrome: the error panel, the progress bar and the base class of every explorer."""

from __future__ import annotations

import contextlib
import functools
import html
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as W


class ErrorPanel(W.HTML):
    """A readable error box; empty and hidden when there is no error."""

    def __init__(self) -> None:
        super().__init__(value="", layout=W.Layout(display="none"))
        self.message = ""

    def show(self, error: BaseException | str) -> None:
        if isinstance(error, BaseException):
            text = f"{type(error).__name__}: {error}"
        else:
            text = str(error)
        self.message = text
        self.value = (
            '<div style="border:1px solid #c0392b;background:#fdecea;color:#7b241c;'
            'padding:6px 10px;border-radius:4px;font-family:sans-serif;white-space:pre-wrap">'
            f"<b>Cannot show this:</b> {html.escape(text)}</div>"
        )
        self.layout.display = None

    def clear(self) -> None:
        self.message = ""
        self.value = ""
        self.layout.display = "none"


class Progress(W.HBox):
    """A progress bar with a label; hidden when idle."""

    def __init__(self) -> None:
        self.bar = W.FloatProgress(value=0.0, min=0.0, max=1.0, layout=W.Layout(width="200px"))
        self.label = W.Label("")
        super().__init__([self.bar, self.label], layout=W.Layout(display="none"))
        self.busy_count = 0

    @contextlib.contextmanager
    def busy(self, label: str) -> Iterator[Callable[[float], None]]:
        """Show the bar while the block runs; yields ``update(fraction)``."""
        self.busy_count += 1
        self.label.value = label
        self.bar.value = 0.0
        self.layout.display = None

        def update(frac: float) -> None:
            self.bar.value = float(min(max(frac, 0.0), 1.0))

        try:
            yield update
        finally:
            self.bar.value = 1.0
            self.layout.display = "none"


class WidgetBase(W.VBox):
    """Base of every explorer: controls on top, then progress, error panel and the live view."""

    def _chrome(self, controls: list[W.Widget], body: list[W.Widget], title: str) -> None:
        self.error = ErrorPanel()
        self.progress = Progress()
        header = W.HTML(f"<b>{html.escape(title)}</b>")
        self.children = [header, *controls, self.progress, self.error, *body]

    def _guarded(self, fn: Callable[..., None]) -> Callable[..., None]:
        """Wrap a callback so bad input shows in the error panel instead of a traceback."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> None:
            try:
                fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - shown to the user, not swallowed silently
                self.error.show(exc)
            else:
                self.error.clear()

        return wrapper

    def _require(self, state: Any, missing: str) -> None:
        """Refuse to draw a figure before the first successful update (``state`` is ``None``)."""
        if state is None:
            raise RuntimeError(f"nothing to show yet: {self.error.message or missing}")

    def figure(self):  # pragma: no cover - overridden
        raise NotImplementedError
