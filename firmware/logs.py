# The node's last lines, kept in RAM: what it printed, for `streetnode logs NODE` over MQTT
# (the `logs` command) when no cable is at hand. Bounded: at most _LINES lines of at most
# _WIDTH characters each (about 1.6 KB at the very worst, nothing while all is well: the
# node prints only on boot, link changes and faults); the oldest line goes first; a reboot
# forgets them (the cable, or the sim's node.log, has the full story).

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_LINES = const(16)
_WIDTH = const(96)


class LogRing:
    def __init__(self, lines=_LINES, width=_WIDTH):
        self.max = lines
        self.width = width
        self.lines = []
        self.dropped = 0  # lines that fell out of the ring

    def log(self, prefix, text):
        """Print `text` (as the node always did) and keep `prefix text`, cut to the width."""
        print(text)
        line = prefix + text
        if len(line) > self.width:
            line = line[: self.width - 3] + "..."
        self.lines.append(line)
        if len(self.lines) > self.max:
            self.lines.pop(0)
            self.dropped += 1

    def last(self, n=None):
        if n is None or n >= len(self.lines):
            return list(self.lines)
        return self.lines[len(self.lines) - n :] if n > 0 else []
