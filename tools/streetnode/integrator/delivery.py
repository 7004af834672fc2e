"""What the bridge has delivered, kept in --state-dir so that a restart (even after SIGKILL)
counts nothing twice, and the dead letters.

state.json: per target and node the seqs a target accepted, as ranges [[lo, hi], ...], and
the seqs sent but not yet confirmed ("uncertain": the request went out, the answer did not
come back, or the bridge died waiting). An uncertain seq is looked up at the target before
it is sent again (SensorThings: by parameters/node and parameters/seq); a target without a
lookup (sensor.community) takes the small risk of one repeated push over losing a reading.

dead-letters.jsonl: one JSON object a line, each a reading (or message) a target refused
for good or the bridge could not read, with the reason and the message itself.
"""

import json
import os
import time
from pathlib import Path

from streetnode.common.files import write_atomic

MAX_RANGES = 512  # per target and node; beyond, the oldest gaps are closed (see Ranges.add)


class Ranges:
    """A set of seqs as sorted, disjoint [lo, hi] ranges: a node's whole life in a few
    bytes while its readings arrive in order, a range more per gap."""

    __slots__ = ("r", "floor")

    def __init__(self, ranges=(), floor=0):
        self.r = [list(x) for x in ranges]
        self.floor = floor  # seqs <= floor: given up on remembering exactly (uncertain)

    def __contains__(self, seq):
        lo, hi = 0, len(self.r)
        while lo < hi:
            mid = (lo + hi) // 2
            a, b = self.r[mid]
            if seq < a:
                hi = mid
            elif seq > b:
                lo = mid + 1
            else:
                return True
        return False

    def add(self, seq):
        r = self.r
        lo, hi = 0, len(r)
        while lo < hi:
            mid = (lo + hi) // 2
            if r[mid][0] <= seq:
                lo = mid + 1
            else:
                hi = mid
        i = lo  # r[i-1][0] <= seq < r[i][0]
        if i > 0 and r[i - 1][1] >= seq:
            return
        left = i > 0 and r[i - 1][1] == seq - 1
        right = i < len(r) and r[i][0] == seq + 1
        if left and right:
            r[i - 1][1] = r[i][1]
            del r[i]
        elif left:
            r[i - 1][1] = seq
        elif right:
            r[i][0] = seq
        else:
            r.insert(i, [seq, seq])
        if len(r) > MAX_RANGES:  # a node that lost readings for good: forget its oldest gap
            self.floor = max(self.floor, r[0][1])
            r[1][0] = r[0][0]
            del r[0]

    def to_json(self):
        return {"ranges": self.r, "floor": self.floor}

    @classmethod
    def from_json(cls, d):
        return cls(d.get("ranges", ()), d.get("floor", 0))


class DeliveryState:
    """Per target: {node: Ranges} accepted, {node: set(seq)} uncertain; saved atomically."""

    def __init__(self, state_dir):
        self.dir = Path(state_dir)
        self.path = self.dir / "state.json"
        self.done = {}  # target -> node -> Ranges
        self.uncertain = {}  # target -> node -> set
        self._dirty = False
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError) as e:
            raise ValueError("state file %s cannot be read (%s): move it away to start afresh, "
                             "and readings sent before may then be looked up again" % (self.path, e))  # fmt: skip
        for target, nodes in (data.get("done") or {}).items():
            self.done[target] = {n: Ranges.from_json(v) for n, v in nodes.items()}
        for target, nodes in (data.get("uncertain") or {}).items():
            self.uncertain[target] = {n: set(v) for n, v in nodes.items()}

    def is_done(self, target, node, seq):
        return seq in self.done.get(target, {}).get(node, ())

    def is_uncertain(self, target, node, seq):
        """May the target hold this reading already? Unconfirmed sends, and every seq of a
        node this state has never delivered (a fresh or lost state directory) or older than
        what it remembers exactly: a target that can look them up does so."""
        if seq in self.uncertain.get(target, {}).get(node, ()):
            return True
        r = self.done.get(target, {}).get(node)
        return r is None or seq <= r.floor

    def mark_sent(self, target, keys):
        """Before a request goes out: these may reach the target even if we never hear back."""
        u = self.uncertain.setdefault(target, {})
        for node, seq in keys:
            u.setdefault(node, set()).add(seq)
        self._dirty = True

    def mark_done(self, target, keys):
        d = self.done.setdefault(target, {})
        u = self.uncertain.get(target, {})
        for node, seq in keys:
            r = d.get(node)
            if r is None:  # what came before this state knew the node is looked up, not assumed
                r = d[node] = Ranges(floor=seq - 1)
            r.add(seq)
            s = u.get(node)
            if s:
                s.discard(seq)
                if not s:
                    del u[node]
        self._dirty = True

    def save(self):
        if not self._dirty:
            return
        data = {
            "version": 1,
            "done": {t: {n: r.to_json() for n, r in nodes.items()} for t, nodes in self.done.items()},
            "uncertain": {t: {n: sorted(s) for n, s in nodes.items() if s} for t, nodes in self.uncertain.items()},
        }
        write_atomic(self.path, json.dumps(data, separators=(",", ":")), 0o600)
        self._dirty = False


class DeadLetters:
    """dead-letters.jsonl in the state directory: appended, flushed and fsynced per entry."""

    MAX_KEPT_PAYLOAD = 4096

    def __init__(self, state_dir):
        self.path = Path(state_dir) / "dead-letters.jsonl"
        self.count = 0

    def add(self, target, topic, payload, reason, seq=None):
        text = payload.decode("utf-8", "replace") if isinstance(payload, (bytes, bytearray)) else str(payload)
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "target": target,
            "topic": topic,
            "seq": seq,
            "reason": reason,
            "payload_bytes": len(payload),
            "payload": text[: self.MAX_KEPT_PAYLOAD],
        }
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        fd = os.open(str(self.path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self.count += 1
