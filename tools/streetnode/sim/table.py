"""What `streetnode sim` shows while it runs. On a terminal: the fleet table redrawn in place
(field/monitor.py's Screen and table), cut to the terminal's height with a "… N more" line
and the recent events below it. Not on a terminal (a pipe, a log file, CI): plain lines,
an event per line and the table every few seconds."""

import sys
import time

EVENTS_SHOWN = 6


class SimDisplay:
    def __init__(self, out=sys.stdout, tty=None):
        self.out = out
        if tty is None:
            tty = hasattr(out, "isatty") and out.isatty()
        self.tty = bool(tty)
        self.screen = None
        if self.tty:
            from streetnode.field.monitor import Screen

            self.screen = Screen(out)
        self.recent = []

    def line(self, text):
        """A line that belongs to the log (a start, a death, an alert)."""
        if not text.startswith("  | "):  # a node's own log lines follow the line that stamps them
            text = time.strftime("%H:%M:%S ") + text
        if self.screen is None:
            print(text, file=self.out, flush=True)
        else:
            self.recent.append(text)
            del self.recent[:-EVENTS_SHOWN]

    def note(self, text):
        """A line printed as it is, even on a terminal (before the table starts, at the end)."""
        if self.screen is not None and self.screen.started:
            self.close()
        print(text, file=self.out, flush=True)

    def table(self, table_lines, extra=()):
        """Show the table: `table_lines(width, height)` gives its lines (monitor.table)."""
        if self.screen is None:
            print(time.strftime("\n%H:%M:%S fleet"), file=self.out, flush=True)
            for line in list(table_lines(200, None)) + [e for e in extra if e]:
                print(line, file=self.out, flush=True)
            return
        cols, rows = self.screen.size()
        extra = [e[:cols] for e in extra if e]
        events = (["recent events:"] + [r[:cols] for r in self.recent]) if self.recent else []
        room = max(3, rows - 1 - len(extra) - len(events))
        self.screen.draw(list(table_lines(cols, room)) + extra + events, time.monotonic())

    def close(self):
        if self.screen is not None and self.screen.started:
            self.screen.close()
            self.screen.started = False
            self.screen = None  # what follows (the final table, the totals) is plain lines
