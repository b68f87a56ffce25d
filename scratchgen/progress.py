"""A one-line progress display for long loops (training epochs, diffusion sampling), with the rate
and the time left, where it will be read:

    a terminal or a notebook   one line redrawn in place (``\\r``), at most every ``interval`` seconds
    a pipe or a log file       a plain line every ``log_interval`` seconds (none for short work), so a
                               log holds readable lines, not carriage-return noise

It is hand-written rather than tqdm (see docs/cli.md, "Progress"): the same ETA and rate in
thirty lines, no dependency, and the log-file behaviour above (tqdm writes its ``\\r`` redraws into
files too). It sits below both the models and the runner, so a model can show its own progress
without importing the runner.
"""
import sys
import time


def format_duration(seconds):
    """``m:ss``, or ``h:mm:ss`` from an hour: how tqdm and most tools show elapsed and left time."""
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _in_a_notebook():
    """Jupyter's stderr is no terminal, but its output area honours ``\\r``."""
    return "ipykernel" in sys.modules


class ProgressBar:
    """``epoch 3/30 [#######.........] 9/21  loss 41.20  2,310 ex/s  eta 0:12`` on stderr. Other
    work (e.g. sampling) names itself with ``label`` and counts in its own ``unit``; with no losses
    given, the loss is left out. ``enabled``: None decides by the stream (see the module
    docstring), True redraws in place, False is silent."""

    def __init__(self, epoch, epochs, total, stream=None, interval=0.2, width=20, enabled=None, label=None,
                 unit="ex", log_interval=30.0):
        self.label, self.total, self.unit = label or f"epoch {epoch}/{epochs}", total, unit
        self.stream = stream or sys.stderr
        redraw = enabled if enabled is not None else (self.stream.isatty() or
                                                      (_in_a_notebook() and self.stream is sys.stderr))
        self.mode = "redraw" if redraw else ("lines" if enabled is None else "silent")
        self.interval = interval if self.mode == "redraw" else log_interval
        self.width = width
        self.started = self.last_drawn = time.perf_counter()
        self.examples, self.drawn = 0, False

    def update(self, done, losses, examples):
        self.examples += examples
        now = time.perf_counter()
        # the last update is always shown on a terminal, in a log only after earlier lines
        finished = done >= self.total and (self.mode == "redraw" or self.drawn)
        if self.mode == "silent" or (now - self.last_drawn < self.interval and not finished):
            return
        self.last_drawn, self.drawn = now, True
        line = self.line(done, losses, now - self.started)
        self.stream.write(f"\r{line}" if self.mode == "redraw" else line + "\n")
        self.stream.flush()

    def line(self, done, losses, elapsed):
        """The text shown after ``done`` of ``total`` in ``elapsed`` seconds."""
        filled = round(self.width * done / self.total)
        speed = self.examples / max(elapsed, 1e-9)
        loss = f"  loss {next(iter(losses.values())):.4g}" if losses else ""
        timing = (f"eta {format_duration(elapsed * (self.total - done) / done)}" if 0 < done < self.total
                  else f"in {format_duration(elapsed)}")
        return (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total}{loss}  "
                f"{speed:,.0f} {self.unit}/s  {timing}")

    def close(self):
        if self.mode == "redraw" and self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
