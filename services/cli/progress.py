"""Progress bars for the CLI's long work: a bar with rate and ETA on a terminal, nothing elsewhere.

The long operations (services/read/, services/devtools/) know nothing of terminals: they take a plain
``on_progress(done, total)`` callback. This module is the one place that turns it into a Rich bar, on
stderr so that stdout stays the command's result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

OnProgress = Callable[[int, int | None], None]


def _ignore(done: int, total: int | None) -> None:
    """The callback when no bar is drawn."""


@contextmanager
def progress_bar(description: str, unit: str = "rows", quiet: bool = False) -> Iterator[OnProgress]:
    """An ``on_progress(done, total)`` callback drawing a bar with rate and ETA while the block runs.

    Nothing is drawn with ``quiet`` or when stderr is not a terminal (a pipe, a log file, a test), so
    scripts and logs get no control codes. ``total`` may be None while unknown: the bar then shows the
    count and the rate only.
    """
    from rich.console import Console  # imported here: most commands draw no bar

    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        yield _ignore
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        """Items per second (Rich's own speed column counts bytes)."""

        def render(self, task: Task) -> Text:
            speed = task.speed
            if speed is None and task.completed and task.elapsed:
                # Rich estimates from two updates at least; a short job jumps to its end in one: its average.
                speed = task.completed / task.elapsed
            return Text(f"{speed:,.0f} {unit}/s" if speed else f"- {unit}/s", style="progress.data.speed")

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        Rate(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update
