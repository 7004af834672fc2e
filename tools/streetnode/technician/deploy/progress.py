"""Progress of the copy: a bar on a terminal, one plain line per file otherwise."""

import sys


class Progress:
    """A bar on a terminal, one plain line per file otherwise (logs, CI, scripts)."""

    def __init__(self, total_bytes, files, stream=None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.total = max(1, total_bytes)
        self.files = files
        self.done = 0
        self.n = 0

    def file(self, name, size):
        self.n += 1
        self.name = name
        self.base = self.done
        if not self.tty:
            print("copy %d/%d %s (%d bytes)" % (self.n, self.files, name, size), file=self.stream, flush=True)
        self.update(0, size)

    def update(self, written, size):
        self.done = self.base + written
        if self.tty:
            width = 24
            fill = int(width * self.done / self.total)
            line = "\r[%s%s] %3d%% %d/%d %s" % ("#" * fill, "." * (width - fill), 100 * self.done // self.total,
                                                 self.n, self.files, self.name[-40:])
            self.stream.write(line + " " * max(0, 70 - len(line)))
            self.stream.flush()

    def end(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
