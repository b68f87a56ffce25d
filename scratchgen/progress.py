"""A one-line progress display for long loops (training epochs, diffusion sampling).

It sits below both the models and the runner, so a model can show its own progress without
importing the runner.
"""
import sys
import time


class ProgressBar:
    """``epoch 3/30 [#######.........] 9/21  loss 41.20  2,310 ex/s`` on stderr, redrawn in place
    (at most every ``interval`` seconds) when stderr is a terminal, silent otherwise. Other work
    (e.g. sampling) names itself with ``label`` and counts in its own ``unit``; with no losses
    given, the loss is left out."""

    def __init__(self, epoch, epochs, total, stream=None, interval=0.2, width=20, enabled=None, label=None,
                 unit="ex"):
        self.label, self.total, self.unit = label or f"epoch {epoch}/{epochs}", total, unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.interval, self.width = interval, width
        self.started = self.last_drawn = time.perf_counter()
        self.examples = 0

    def update(self, done, losses, examples):
        self.examples += examples
        now = time.perf_counter()
        if not self.enabled or (now - self.last_drawn < self.interval and done < self.total):
            return
        self.last_drawn = now
        filled = round(self.width * done / self.total)
        speed = self.examples / max(now - self.started, 1e-9)
        loss = f"  loss {next(iter(losses.values())):.4g}" if losses else ""
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{done}/{self.total}{loss}  {speed:,.0f} {self.unit}/s")
        self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()
