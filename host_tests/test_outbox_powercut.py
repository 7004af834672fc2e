"""Real power cuts, as near as a host gets: a MicroPython process appends and acknowledges
records on the outbox as fast as it can and is killed with SIGKILL at random moments
(seeded), then started again on the same directory, about thirty times. After each kill
a copy of the directory is opened on CPython and checked:

- no record ever returned is corrupt (payloads are a function of their seq, and the
  child checks every payload it reads, too);
- the retained unacknowledged records are exactly acked+1 .. next_seq-1, no gap;
- next_seq is above every seq whose append() returned (the child prints each one after
  append returns), and at most one above the last printed (the one committed just
  before the kill);
- the ack position and `dropped` never go backwards, and `dropped` counts every record
  let go: each seq at or below the ack position that was never acknowledged.
"""

import os
import random
import shutil
import signal
import subprocess
import time

import pytest

from firmware.outbox import Outbox
from streetnode.common import mpy
from streetnode.common.paths import REPO

CHILD = r"""
import sys, random
from firmware.outbox import Outbox

def payload(seq):
    return b'{"seq":%d,"pad":"' % seq + b"x" * (seq * 37 % 90) + b'"}'

d, seed, max_records, segment_records, persist_every, skip, ack_quarters, slow = sys.argv[1:9]
random.seed(int(seed))

if slow == "1":
    # Slow flash: every write reaches the file in small pieces with a pause between
    # them, so that a kill often lands inside a record or a state file being written
    # (a write() syscall of a whole record cannot be torn by a signal).
    import time
    import firmware.atomic
    import firmware.outbox

    class SlowFile:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            mv = memoryview(data)
            i = 0
            while i < len(mv):
                print("W")  # the parent may kill now, in the middle of this write
                n = random.getrandbits(4) + 1
                self.f.write(mv[i : i + n])
                i += n
                time.sleep_us(150)
            return len(mv)

        def __getattr__(self, name):
            return getattr(self.f, name)

    def slow_open(path, mode="r"):
        f = open(path, mode)
        return SlowFile(f) if "w" in mode or "a" in mode else f

    firmware.outbox.open = slow_open
    firmware.atomic.open = slow_open
box = Outbox(d, max_records=int(max_records), segment_records=int(segment_records),
             ack_persist_every=int(persist_every))
print("O %d %d %d" % (box.next_seq, box.acked, box.dropped))
while True:
    seq = box.append(payload(box.next_seq))
    print("A %d" % seq)
    if random.getrandbits(2) < int(ack_quarters):  # a publish round now and then
        for s, p in box.oldest(random.getrandbits(2) + 1):
            if p != payload(s):
                print("BAD %d" % s)
                sys.exit(3)
            if skip == "1" and random.getrandbits(3) == 0:
                continue  # a PUBACK that never came: later acks arrive out of order
            box.ack(s)
            print("K %d" % s)
"""


def payload(seq):
    return b'{"seq":%d,"pad":"' % seq + b"x" * (seq * 37 % 90) + b'"}'


def _run(tmp_path, seed, kills, max_records, segment_records, persist_every, skip, ack_quarters, slow):
    rng = random.Random(seed)
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    d = tmp_path / "outbox"
    env = dict(os.environ, MICROPYPATH="%s:.frozen" % REPO)
    printed = []  # every seq whose append returned, over all runs
    acked = set()  # every seq whose ack returned
    last_acked, last_dropped = 0, 0
    repairs = 0
    params = dict(max_records=max_records, segment_records=segment_records, ack_persist_every=persist_every)
    for kill in range(kills):
        proc = subprocess.Popen(
            [mpy.executable(), str(child), str(d), str(rng.getrandbits(30)), str(max_records),
             str(segment_records), str(persist_every), "1" if skip else "0", str(ack_quarters),
             "1" if slow else "0"],
            cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        target = rng.randint(1, 20)  # appends before the kill
        # With slow flash, half the kills come at a chosen piece of a write (a record,
        # a state file, a segment copy), the others after a random pause.
        pieces = rng.randint(1, 40) if slow and rng.random() < 0.5 else 0
        pause = not pieces
        appended = 0
        lines = []
        while appended < target or pieces:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if appended >= target and line.startswith(b"W"):
                pieces -= 1
            appended += line.startswith(b"A ")
        if pause:
            time.sleep(rng.random() * 0.008)  # into the next append, ack or state write
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        lines += out.splitlines()
        assert proc.returncode == -signal.SIGKILL, (proc.returncode, err.decode()[-2000:])
        for line in lines:
            kind, _, value = line.strip().partition(b" ")
            assert kind != b"BAD", "run %d: the child read a corrupt record %s" % (kill, value)
            if kind == b"O":
                nxt = int(value.split()[0])
                assert not printed or nxt > printed[-1], "run %d reopened at %d" % (kill, nxt)
            elif kind == b"A":
                seq = int(value)
                assert not printed or seq > printed[-1], "seq %d after %d" % (seq, printed[-1])
                printed.append(seq)
            elif kind == b"K":
                acked.add(int(value))

        # A reboot on a copy, so that the next child repairs the original itself.
        copy = tmp_path / ("check-%d" % kill)
        shutil.copytree(d, copy)
        box = Outbox(str(copy), **params)
        repairs += box.repairs
        assert box.state_error is None, box.state_error
        if printed:
            assert printed[-1] < box.next_seq <= printed[-1] + 2, (kill, printed[-1], box.next_seq)
        records = list(box.records(batch=8))
        seqs = [s for s, _ in records]
        assert seqs == list(range(box.acked + 1, box.next_seq)), (kill, box.acked, box.next_seq, seqs[:5])
        for seq, data in records:
            assert data == payload(seq), seq
        assert box.pending() == len(records)
        assert box.acked >= last_acked and box.dropped >= last_dropped
        never_acked = sum(1 for s in range(1, box.acked + 1) if s not in acked)
        # Each kill may interrupt one ack after it was persisted, before it was printed.
        assert never_acked - (kill + 1) <= box.dropped, (kill, never_acked, box.dropped)
        if persist_every == 1 and not skip:
            assert box.dropped <= never_acked, (kill, never_acked, box.dropped)
        last_acked, last_dropped = box.acked, box.dropped
        shutil.rmtree(copy)
    assert len(printed) >= kills  # the children did work
    return printed, last_dropped, repairs


def test_sigkill_during_appends_and_acks(tmp_path):
    # Acks lag behind appends, so the outbox fills up and drops too.
    printed, dropped, repairs = _run(
        tmp_path, seed=2026, kills=30, max_records=25, segment_records=3, persist_every=1, skip=False,
        ack_quarters=1, slow=True,
    )
    assert dropped > 0
    print("%d appends, %d dropped, %d torn segments repaired" % (len(printed), dropped, repairs))


def test_sigkill_with_batched_acks_and_lost_pubacks(tmp_path):
    _run(tmp_path, seed=7, kills=15, max_records=40, segment_records=4, persist_every=4, skip=True, ack_quarters=3,
         slow=False)


@pytest.fixture(autouse=True)
def _interpreter_present():
    mpy.executable()  # fails with the install hint when it is missing
