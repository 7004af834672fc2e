"""The outbox against a model, under random appends, acks (in order, out of order, twice,
bogus), clean reboots, power cuts, torn appends, garbage on flash and leftover temp files
(hypothesis, CPython; the same code runs on MicroPython).

The model knows every payload ever committed, which seqs were acknowledged and which the
outbox let go. It cannot know which segment the outbox drops, so it checks the rules
instead: only the oldest unacknowledged records go, never one of the newest max_records,
and `dropped` counts each of them exactly once.
"""

import os
import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from firmware import atomic
from firmware.outbox import Outbox


class PowerCut(Exception):
    pass


class OutboxMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="streetnode-obprop-")
        self.box = None
        # What this test checks does not depend on the disk surviving an OS crash:
        # flush without fsync keeps a thousand reopens fast. Restored in teardown.
        self.saved_sync = atomic._fsync, atomic._os_sync
        atomic._fsync = atomic._os_sync = None

    @initialize(
        max_records=st.integers(1, 12),
        segment_records=st.integers(1, 5),
        persist_every=st.sampled_from([1, 1, 3]),
    )
    def start(self, max_records, segment_records, persist_every):
        self.params = dict(max_records=max_records, segment_records=segment_records, ack_persist_every=persist_every)
        self.persist_every = persist_every
        self.box = Outbox(self.dir, **self.params)
        self.next = 1
        self.payloads = {}
        self.acked = set()  # acknowledged, as the outbox should remember it
        self.gone = set()  # let go unacknowledged: counted in dropped

    def teardown(self):
        atomic._fsync, atomic._os_sync = self.saved_sync
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- the model ---------------------------------------------------------------------------

    def pointer(self):
        p = 0
        while p + 1 < self.next and (p + 1 in self.acked or p + 1 in self.gone):
            p += 1
        return p

    def unacked(self):
        return [s for s in range(1, self.next) if s not in self.acked and s not in self.gone]

    def reopen(self):
        p = self.pointer()
        self.acked = {s for s in self.acked if s <= p}  # out-of-order acks live in RAM only
        self.box = Outbox(self.dir, **self.params)

    def newest_segment(self):
        names = sorted(n for n in os.listdir(self.dir) if n.endswith(".seg"))
        return os.path.join(self.dir, names[-1])

    # -- rules -----------------------------------------------------------------------------------

    @rule(payload=st.binary(max_size=40))
    def append(self, payload):
        assert self.box.append(payload) == self.next
        self.payloads[self.next] = payload
        self.next += 1

    @rule(k=st.integers(1, 6))
    def ack_oldest(self, k):
        for seq, _ in self.box.oldest(k):
            assert self.box.ack(seq)
            self.acked.add(seq)

    @rule(data=st.data())
    def ack_any(self, data):
        seq = data.draw(st.integers(-1, self.next + 1))
        expected = seq in set(self.unacked())
        assert self.box.ack(seq) == expected
        if expected:
            self.acked.add(seq)

    @precondition(lambda self: self.acked)
    @rule(data=st.data())
    def ack_twice(self, data):
        assert not self.box.ack(data.draw(st.sampled_from(sorted(self.acked))))

    @rule()
    def reboot(self):
        self.box.sync()
        self.reopen()

    @precondition(lambda self: self.persist_every == 1)
    @rule()
    def power_cut(self):
        self.reopen()  # no sync: with ack_persist_every=1 every ack is on flash already

    @rule(payload=st.binary(max_size=40), where=st.floats(0, 1, exclude_max=True))
    def torn_append(self, payload, where):
        """A power cut in the middle of writing the record: only part of it reaches the
        file, and nothing after the write (making room) happens."""
        box = self.box
        box.sync()

        def cut_short(data):
            record = bytes(box._hdr) + bytes(data) + bytes(box._crc)
            with open(box._active_path, "ab") as f:
                f.write(record[: int(where * len(record))])
            raise PowerCut()

        box._write = cut_short
        try:
            box.append(payload)
            raise AssertionError("the append did not reach the write")
        except PowerCut:
            pass
        self.reopen()  # the torn seq was never committed: the model never saw it

    @precondition(lambda self: self.next > 1)
    @rule(junk=st.binary(min_size=1, max_size=60))
    def garbage_on_flash(self, junk):
        self.box.sync()
        with open(self.newest_segment(), "ab") as f:
            f.write(junk)
        self.reopen()

    @rule(junk=st.binary(max_size=80))
    def leftover_temp_state(self, junk):
        self.box.sync()
        with open(os.path.join(self.dir, "state.tmp"), "wb") as f:
            f.write(junk)
        self.reopen()
        assert self.box.state_error is None

    # -- what must always hold -------------------------------------------------------------------

    @invariant()
    def matches_the_model(self):
        if self.box is None:
            return
        box = self.box
        records = box.oldest(10**6)
        seqs = [s for s, _ in records]
        assert seqs == sorted(set(seqs)), seqs
        for seq, payload in records:
            assert payload == self.payloads[seq], seq
        assert [s for s, _ in box.records(batch=2)] == seqs
        unacked = self.unacked()
        assert set(seqs) <= set(unacked)
        newly_gone = set(unacked) - set(seqs)
        if newly_gone:
            assert max(newly_gone) < min(seqs or [self.next])  # oldest first
            assert max(newly_gone) <= self.next - 1 - self.params["max_records"]  # newest kept
            self.gone |= newly_gone
        assert box.dropped == len(self.gone)
        assert box.pending() == len(seqs)
        assert box.next_seq == self.next and box.last_seq == self.next - 1
        assert box.acked == self.pointer()
        segments = [n for n in os.listdir(self.dir) if n.endswith(".seg")]
        seg = min(self.params["segment_records"], self.params["max_records"])
        assert len(segments) <= (self.params["max_records"] + 2 * seg) // seg + 1


OutboxMachine.TestCase.settings = settings(
    max_examples=120,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOutboxProperties = OutboxMachine.TestCase
