"""Progress for long work: rich status lines on stderr, silent with quiet=True or off a TTY."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


class Progress:
    def __init__(self, quiet: bool = False) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, soft_wrap=True)
        self.quiet = quiet

    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, highlight=False)

    def warn(self, message: str) -> None:
        """A warning on stderr, unless quiet (warnings that matter are also kept in the sidecar or the JSON)."""
        if not self.quiet:
            self.console.print(f"[yellow]warning:[/] {message}", highlight=False)

    @contextmanager
    def step(self, message: str) -> Iterator[None]:
        """Show a spinner while a step runs (TTY only), then one line with its duration."""
        start = time.perf_counter()
        if self.quiet or not self.console.is_terminal:
            yield
        else:
            with self.console.status(message):
                yield
        self.info(f"  {message} [dim]({time.perf_counter() - start:.1f}s)[/]")

    @contextmanager
    def live(self) -> Iterator[Callable[[str], None]]:
        """A status line that the caller rewrites as work advances (TTY only); yields its update function."""
        if self.quiet or not self.console.is_terminal:
            yield lambda message: None
            return
        with self.console.status("") as status:
            yield lambda message: status.update(message)

    def track(self, items: Iterable[T], total: int, label: str) -> Iterator[T]:
        """Iterate with a progress bar on a TTY; plain iteration otherwise."""
        if self.quiet or not self.console.is_terminal:
            yield from items
            return
        from rich.progress import track

        yield from track(items, total=total, description=label, console=self.console, transient=True)


SILENT = Progress(quiet=True)
