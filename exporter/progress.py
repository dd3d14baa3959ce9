"""Terminal output for long jobs: a rich progress bar on a TTY, nothing on a pipe.

rich is used because it draws a flicker-free live bar with rates and ETA on Windows
terminals, macOS and Linux alike, and degrades to nothing when output is not a terminal.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeRemainingColumn, TransferSpeedColumn)


class ImportProgress:
    def __init__(self, total_bytes: int, files: int, *, stream: TextIO | None = None,
                 enabled: bool | None = None) -> None:
        stream = stream or sys.stderr
        self.enabled = stream.isatty() if enabled is None else enabled
        self._progress: Progress | None = None
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.fields[files]}"),
                BarColumn(),
                TaskProgressColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=Console(file=stream),
                transient=True,
            )
            self._task = self._progress.add_task("import", total=max(total_bytes, 1),
                                                 files=f"0/{files} files", rate="")
            self._files = files

    def __enter__(self) -> "ImportProgress":
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress:
            self._progress.stop()

    def update(self, done_bytes: int, files_done: int, events: int, elapsed: float) -> None:
        if not self._progress:
            return
        rate = f"{events / elapsed:,.0f} ev/s" if elapsed > 0 else ""
        self._progress.update(self._task, completed=done_bytes,
                              files=f"{files_done}/{self._files} files", rate=rate)
