# The outbox (firmware/outbox.py) on real files: seq continuity, acks, the full-outbox
# drop, and repair after torn writes, garbage, bit rot, lost files and cut-short
# atomic writes. Runs on CPython and inside MicroPython.

import os
import random

from firmware import atomic
from firmware.outbox import RECORD_OVERHEAD, Outbox
from host_tests.device.scratch import ScratchDir, copy_tree, files, read_bytes, remove_tree, write_bytes
from host_tests.device.support import heap_allocated, raises


def _payload(seq, salt=0):
    # deterministic, varied length, mostly JSON-like like the node's records
    return (b'{"seq":%d,"v":"' % seq) + b"abcdefghij"[: (seq * 7 + salt) % 11] + b'"}'


def _fill(ob, n, salt=0):
    got = []
    for _ in range(n):
        got.append(ob.append(_payload(ob.next_seq, salt)))
    return got


def _seqs(ob, n=100000):
    return [s for s, _ in ob.oldest(n)]


def _check_payloads(ob, salt=0):
    for seq, payload in ob.records():
        assert payload == _payload(seq, salt), (seq, payload)


def _segs(d):
    return [n for n in files(d) if n.endswith(".seg")]


def _seg_path(d, first):
    return d + "/%08x.seg" % first


# -- the basics -----------------------------------------------------------------------------


def test_seq_starts_at_one_and_grows_by_one():
    with ScratchDir("ob") as d:
        ob = Outbox(d)
        assert (ob.next_seq, ob.last_seq, ob.dropped, ob.pending()) == (1, 0, 0, 0)
        assert ob.oldest(5) == []
        assert _fill(ob, 7) == [1, 2, 3, 4, 5, 6, 7]
        assert (ob.next_seq, ob.last_seq, ob.pending()) == (8, 7, 7)
        assert ob.oldest(3) == [(1, _payload(1)), (2, _payload(2)), (3, _payload(3))]
        assert ob.oldest(0) == []
        _check_payloads(ob)


def test_ack_in_order_removes_records_and_releases_segments():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=4)
        _fill(ob, 10)
        assert _segs(d) == ["00000001.seg", "00000005.seg", "00000009.seg"]
        for seq, payload in ob.oldest(5):
            assert payload == _payload(seq)
            assert ob.ack(seq)
        assert ob.acked == 5 and ob.pending() == 5
        assert _seqs(ob) == [6, 7, 8, 9, 10]
        assert _segs(d) == ["00000005.seg", "00000009.seg"]  # 1..4 all acknowledged
        for seq in range(6, 11):
            assert ob.ack(seq)
        assert ob.pending() == 0 and ob.oldest(3) == []
        assert _segs(d) == ["00000009.seg"]  # the active segment stays: it carries the seq
        ob.sync()
        ob = Outbox(d, max_records=100, segment_records=4)
        assert (ob.next_seq, ob.pending(), ob.acked) == (11, 0, 10)
        assert ob.append(b"x") == 11


def test_reopen_keeps_records_seq_and_acks():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=50, segment_records=5)
        _fill(ob, 12)
        for seq in (1, 2, 3):
            ob.ack(seq)
        ob.sync()
        ob = Outbox(d, max_records=50, segment_records=5)
        assert (ob.next_seq, ob.acked, ob.pending(), ob.dropped) == (13, 3, 9, 0)
        assert _seqs(ob) == list(range(4, 13))
        _check_payloads(ob)
        assert _fill(ob, 3) == [13, 14, 15]
        ob = Outbox(d, max_records=50, segment_records=5)
        assert ob.next_seq == 16 and _seqs(ob) == list(range(4, 16))


def test_acks_not_yet_persisted_are_published_again_after_a_reboot():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=50, ack_persist_every=4)
        _fill(ob, 10)
        for seq in range(1, 7):
            ob.ack(seq)
        # no sync(): the ack position was persisted at 4, the 5th and 6th acks were not
        ob = Outbox(d, max_records=100, segment_records=50, ack_persist_every=4)
        assert ob.acked == 4 and _seqs(ob) == list(range(5, 11))  # redelivery, never loss
        assert ob.next_seq == 11


def test_seq_continues_across_many_reopens():
    with ScratchDir("ob") as d:
        expected = 1
        for round_ in range(6):
            ob = Outbox(d, max_records=20, segment_records=3)
            assert ob.next_seq == expected
            got = _fill(ob, round_ + 1)
            assert got == list(range(expected, expected + round_ + 1))
            expected += round_ + 1
            for seq, _ in ob.oldest(round_):
                ob.ack(seq)
        ob = Outbox(d, max_records=20, segment_records=3)
        assert ob.next_seq == expected == 22


def test_payload_limits():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_payload=64)
        assert ob.append(b"") == 1
        assert ob.append(bytearray(64)) == 2
        raises(ValueError, ob.append, bytes(65))
        raises(TypeError, ob.append, "text")
        assert ob.next_seq == 3 and ob.oldest(5) == [(1, b""), (2, bytes(64))]
        raises(ValueError, Outbox, d, 0)
        raises(ValueError, Outbox, d, 10, 5, 70000)


def test_directory_is_created_with_its_parents():
    with ScratchDir("ob") as d:
        ob = Outbox(d + "/flash/outbox")
        assert ob.append(b"a") == 1
        assert Outbox(d + "/flash/outbox/").next_seq == 2


# -- acks out of order and twice --------------------------------------------------------------


def test_out_of_order_and_duplicate_acks():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=3)
        _fill(ob, 9)
        assert ob.ack(3) and ob.ack(2)
        assert not ob.ack(3)  # twice
        assert ob.acked == 0 and ob.pending() == 7
        assert _seqs(ob) == [1, 4, 5, 6, 7, 8, 9]
        assert ob.ack(1)
        assert ob.acked == 3 and _seqs(ob) == [4, 5, 6, 7, 8, 9]
        assert not ob.ack(1) and not ob.ack(0) and not ob.ack(-5)
        assert not ob.ack(10) and not ob.ack(1 << 40)  # never given out
        assert ob.ack(9) and ob.ack(7)
        assert _seqs(ob) == [4, 5, 6, 8]
        assert [s for s, _ in ob.records(batch=1)] == [4, 5, 6, 8]
        for seq in (6, 5, 4):
            assert ob.ack(seq)
        assert ob.acked == 7 and ob.pending() == 1
        assert ob.ack(8) and ob.pending() == 0 and ob.acked == 9
        assert ob.dropped == 0


def test_out_of_order_acks_live_in_ram_only():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=10, ack_persist_every=1)
        _fill(ob, 5)
        ob.ack(1)
        ob.ack(3)
        ob.ack(4)
        ob.sync()
        ob = Outbox(d, max_records=100, segment_records=10)
        assert ob.acked == 1 and _seqs(ob) == [2, 3, 4, 5]  # 3 and 4 are published again


def test_many_out_of_order_acks_are_bounded():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=400, segment_records=50)
        _fill(ob, 200)
        accepted = [seq for seq in range(200, 1, -1) if ob.ack(seq)]
        assert len(accepted) == 64  # the rest will simply be published again
        assert ob.pending() == 200 - 64
        assert ob.ack(1)
        assert ob.acked == 1  # 2 was not remembered
        assert _seqs(ob, 3) == [2, 3, 4]


# -- a full outbox -------------------------------------------------------------------------------


def test_full_outbox_drops_oldest_and_counts():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=10, segment_records=4)
        _fill(ob, 100)
        kept = _seqs(ob)
        assert kept == list(range(101 - len(kept), 101))  # the newest, without a gap
        assert 10 <= len(kept) < 10 + 4  # max_records, plus less than a segment
        assert ob.dropped == 100 - len(kept) and ob.pending() == len(kept)
        assert len(_segs(d)) <= 4  # bounded on flash
        _check_payloads(ob)
        ob = Outbox(d, max_records=10, segment_records=4)
        assert ob.dropped == 100 - len(kept) and _seqs(ob) == kept and ob.next_seq == 101


def test_full_outbox_does_not_count_acknowledged_records():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=6, segment_records=3)
        _fill(ob, 6)
        for seq in (1, 2, 3):
            ob.ack(seq)  # segment 1..3 released
        ob.ack(5)  # out of order, inside the segment that will be dropped
        _fill(ob, 5)  # up to 11: the newest six do not fit without 4..6 yet
        assert ob.dropped == 0 and _seqs(ob) == [4, 6, 7, 8, 9, 10, 11]
        assert ob.append(_payload(12)) == 12  # now they do: 4..6 goes, 5 was delivered
        assert ob.dropped == 2
        assert _seqs(ob) == list(range(7, 13))


def test_max_records_smaller_than_segment():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=2, segment_records=50)
        _fill(ob, 9)
        assert len(_seqs(ob)) >= 2 and _seqs(ob)[-1] == 9 and ob.dropped + ob.pending() == 9
        assert ob.pending() <= 4


# -- power cuts during an append ---------------------------------------------------------------------


def _torn_tail_case(n_records, segment_records):
    """Write n_records, then cut the last record at every byte offset of it: every
    earlier record survives, and the torn seq is given to the next append."""
    with ScratchDir("ob") as d, ScratchDir("ob") as c:
        ob = Outbox(d, max_records=100, segment_records=segment_records)
        _fill(ob, n_records - 1)
        ob.sync()
        ob.append(_payload(n_records))
        newest = _segs(d)[-1]
        data = read_bytes(d + "/" + newest)
        start = len(data) - RECORD_OVERHEAD - len(_payload(n_records))
        for cut in range(start, len(data)):
            remove_tree(c)
            copy_tree(d, c)
            write_bytes(c + "/" + newest, data[:cut])
            box = Outbox(c, max_records=100, segment_records=segment_records)
            assert box.next_seq == n_records, cut
            assert _seqs(box) == list(range(1, n_records)), cut
            assert box.dropped == 0 and box.pending() == n_records - 1
            assert len(read_bytes(c + "/" + newest)) == start  # the torn tail is cut off
            _check_payloads(box)
            assert box.append(b"after the cut") == n_records
            box = Outbox(c, max_records=100, segment_records=segment_records)
            assert box.oldest(100)[-1] == (n_records, b"after the cut")
            assert box.next_seq == n_records + 1
        # the complete file, for contrast
        remove_tree(c)
        copy_tree(d, c)
        assert Outbox(c, max_records=100, segment_records=segment_records).next_seq == n_records + 1


def test_torn_write_at_every_offset_of_the_last_record():
    _torn_tail_case(6, 10)


def test_torn_write_of_the_first_record_of_a_new_segment():
    _torn_tail_case(7, 3)  # record 7 starts segment 00000007.seg


def test_garbage_after_the_last_record_is_cut_off():
    with ScratchDir("ob") as d:
        random.seed(7)
        ob = Outbox(d, max_records=100, segment_records=10)
        _fill(ob, 4)
        path = _seg_path(d, 1)
        good = len(read_bytes(path))
        for junk in (b"\xa5", b"\xa5\x53", bytes(random.getrandbits(8) for _ in range(200)), b"\xa5\x53" * 40):
            write_bytes(path, junk, "ab")
            ob = Outbox(d, max_records=100, segment_records=10)
            assert ob.next_seq == 5 and _seqs(ob) == [1, 2, 3, 4]
            assert len(read_bytes(path)) == good and ob.repairs == 1
            _check_payloads(ob)
        assert ob.append(b"z") == 5


def test_cut_while_the_state_is_written_leaves_a_temp_that_is_ignored():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=10)
        _fill(ob, 5)
        ob.ack(1)
        ob.ack(2)
        ob.sync()
        state = read_bytes(d + "/state")
        for junk in (b"", state[: len(state) // 2], b"S1 garbage", state.replace(b'"acked": 2', b'"acked": 4')):
            write_bytes(d + "/state.tmp", junk)
            ob = Outbox(d, max_records=100, segment_records=10)
            assert ob.acked == 2 and ob.next_seq == 6 and _seqs(ob) == [3, 4, 5]
            assert ob.state_error is None
            assert "state.tmp" not in files(d)


def test_complete_temp_without_state_is_promoted():
    # FAT cannot rename over a file: a cut between removing the old state and renaming
    # the complete temp leaves only the temp.
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=10)
        _fill(ob, 5)
        for seq in (1, 2, 3):
            ob.ack(seq)
        ob.sync()
        os.rename(d + "/state", d + "/state.tmp")
        ob = Outbox(d, max_records=100, segment_records=10)
        assert ob.acked == 3 and _seqs(ob) == [4, 5] and ob.state_error is None
        assert "state" in files(d) and "state.tmp" not in files(d)


def test_unusable_state_file_republishes_and_keeps_seq():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=3)
        _fill(ob, 8)
        for seq in (1, 2, 3, 4):
            ob.ack(seq)
        ob.sync()
        state = bytearray(read_bytes(d + "/state"))
        state[20] ^= 0x01  # a flipped bit: the checksum catches it
        write_bytes(d + "/state", state)
        ob = Outbox(d, max_records=100, segment_records=3)
        assert ob.state_error is not None and "checksum" in ob.state_error
        assert ob.next_seq == 9  # from the records themselves
        assert _seqs(ob) == [4, 5, 6, 7, 8]  # everything retained goes out again
        assert ob.append(b"x") == 9
        assert Outbox(d, max_records=100, segment_records=3).state_error is None
        os.remove(d + "/state")
        ob = Outbox(d, max_records=100, segment_records=3)
        assert "missing" in ob.state_error and ob.next_seq == 10 and _seqs(ob) == [4, 5, 6, 7, 8, 9]
        write_bytes(d + "/state", b"x" * 9000)  # absurdly large: not even read
        ob = Outbox(d, max_records=100, segment_records=3)
        assert "more than" in ob.state_error and ob.next_seq == 10


# -- bit rot and lost files ------------------------------------------------------------------------


def _record_offsets(path):
    data = read_bytes(path)
    offsets = []
    pos = 0
    while pos < len(data):
        offsets.append(pos)
        pos += RECORD_OVERHEAD + data[pos + 2] + (data[pos + 3] << 8)
    return offsets


def test_corrupt_record_in_the_middle_is_skipped_and_counted_once():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=5)
        _fill(ob, 12)
        ob.sync()
        path = _seg_path(d, 6)
        data = bytearray(read_bytes(path))
        at = _record_offsets(path)[2]  # seq 8
        data[at + RECORD_OVERHEAD - 1] ^= 0x40  # a payload byte
        write_bytes(path, data)
        ob = Outbox(d, max_records=100, segment_records=5)
        assert _seqs(ob) == [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12]
        assert ob.dropped == 1 and ob.pending() == 11 and ob.repairs == 1
        _check_payloads(ob)
        ob = Outbox(d, max_records=100, segment_records=5)
        assert ob.dropped == 1 and ob.repairs == 0  # repaired, and counted only once
        for seq in (1, 2, 3, 4, 5, 6, 7, 9):
            assert ob.ack(seq)
        assert not ob.ack(8)
        assert ob.acked == 9 and _seqs(ob) == [10, 11, 12]
        assert ob.append(b"x") == 13


def test_corrupt_length_field_resynchronises_on_the_next_record():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=10)
        _fill(ob, 6)
        path = _seg_path(d, 1)
        data = bytearray(read_bytes(path))
        offsets = _record_offsets(path)
        data[offsets[1] + 2] = 0xFF  # seq 2 now claims a huge payload
        data[offsets[1] + 3] = 0x0F
        data[offsets[3]] = 0  # seq 4 loses its magic
        write_bytes(path, data)
        ob = Outbox(d, max_records=100, segment_records=10)
        assert _seqs(ob) == [1, 3, 5, 6] and ob.dropped == 2 and ob.next_seq == 7
        _check_payloads(ob)


def test_corruption_found_while_reading_is_counted_and_skipped():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=10)
        _fill(ob, 5)
        path = _seg_path(d, 1)
        data = bytearray(read_bytes(path))
        data[_record_offsets(path)[1] + 5] ^= 0xFF  # seq 2's header, after opening
        write_bytes(path, data)
        assert _seqs(ob) == [1, 3, 4, 5]
        assert ob.dropped == 1 and ob.pending() == 4
        ob = Outbox(d, max_records=100, segment_records=10)
        assert ob.dropped == 1 and _seqs(ob) == [1, 3, 4, 5]  # persisted, not counted again


def test_record_lost_after_its_out_of_order_ack_is_not_dropped():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=10)
        _fill(ob, 5)
        assert ob.ack(3)  # delivered, out of order
        path = _seg_path(d, 1)
        data = bytearray(read_bytes(path))
        data[_record_offsets(path)[2] + RECORD_OVERHEAD] ^= 0x01  # then seq 3 rots
        write_bytes(path, data)
        assert _seqs(ob) == [1, 2, 4, 5]
        assert ob.dropped == 0 and ob.pending() == 4
        for seq in (1, 2):
            assert ob.ack(seq)
        assert ob.acked == 3 and ob.pending() == 2


def test_changing_the_sizes_between_boots_keeps_seq_and_records():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=3)
        _fill(ob, 7)  # segments 1, 4, 7 (seqs 7..9 reserved)
        ob = Outbox(d, max_records=100, segment_records=10)
        assert _fill(ob, 5) == [8, 9, 10, 11, 12]
        assert _segs(d) == ["00000001.seg", "00000004.seg", "00000007.seg", "0000000a.seg"]
        ob = Outbox(d, max_records=4, segment_records=2)  # a smaller outbox: drops at once
        assert ob.append(_payload(13)) == 13
        kept = _seqs(ob)
        assert kept[-1] == 13 and len(kept) >= 4 and ob.dropped == 13 - len(kept)
        assert kept == list(range(14 - len(kept), 14))
        _check_payloads(ob)


def test_lost_tail_after_the_state_saw_it_is_a_gap_not_a_reused_seq():
    # Bit rot (not a torn write: the state already knew seq 6) in the last record.
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=10)
        _fill(ob, 6)
        ob.ack(1)
        ob.sync()  # the state now says next seq 7
        path = _seg_path(d, 1)
        data = read_bytes(path)
        write_bytes(path, data[: _record_offsets(path)[5] + 3])
        ob = Outbox(d, max_records=100, segment_records=10)
        assert ob.next_seq == 7 and _seqs(ob) == [2, 3, 4, 5] and ob.dropped == 1
        assert ob.append(b"x") == 7


def test_deleted_oldest_segment_is_counted():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=4)
        _fill(ob, 10)
        ob.ack(1)
        ob.sync()
        os.remove(_seg_path(d, 1))
        ob = Outbox(d, max_records=100, segment_records=4)
        assert _seqs(ob) == [5, 6, 7, 8, 9, 10] and ob.dropped == 3 and ob.acked == 4
        assert ob.next_seq == 11


def test_seq_never_repeats_even_if_every_segment_is_deleted():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=4)
        _fill(ob, 6)  # the active segment 5.. reserved seqs 5..8
        for name in _segs(d):
            os.remove(d + "/" + name)
        ob = Outbox(d, max_records=100, segment_records=4)
        assert ob.next_seq == 9  # past the whole reserved block: 5..8 may have been used
        assert ob.pending() == 0 and ob.dropped == 8  # a receiver sees the gap 1..8
        assert ob.append(b"x") == 9
        ob = Outbox(d, max_records=100, segment_records=4)
        assert ob.next_seq == 10 and _seqs(ob) == [9] and ob.dropped == 8


def test_seq_never_repeats_when_the_state_and_the_segments_disagree():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=4)
        _fill(ob, 3)
        ob.sync()
        state = read_bytes(d + "/state")
        _fill(ob, 6)  # up to 9, two more segments
        write_bytes(d + "/state", state)  # an old state (never happens: it is written atomically)
        ob = Outbox(d, max_records=100, segment_records=4)
        assert ob.next_seq == 10 and _seqs(ob) == list(range(1, 10))


def test_cut_during_segment_deletion():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=3)
        _fill(ob, 7)
        saved = read_bytes(_seg_path(d, 1))
        for seq in (1, 2, 3):
            ob.ack(seq)
        assert "00000001.seg" not in _segs(d)
        write_bytes(_seg_path(d, 1), saved)  # as if the cut came between state and remove
        ob = Outbox(d, max_records=100, segment_records=3)
        assert "00000001.seg" not in _segs(d)
        assert _seqs(ob) == [4, 5, 6, 7] and ob.dropped == 0 and ob.acked == 3


def test_cut_during_segment_creation():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=3)
        _fill(ob, 6)
        state = read_bytes(d + "/state")
        ob.append(_payload(7))  # creates 00000007.seg and writes the state
        # the cut came after the file was created, before the state named it:
        write_bytes(_seg_path(d, 7), b"")
        write_bytes(d + "/state", state)
        ob = Outbox(d, max_records=100, segment_records=3)
        assert ob.next_seq == 7 and ob.dropped == 0 and _seqs(ob) == [1, 2, 3, 4, 5, 6]
        assert _fill(ob, 4) == [7, 8, 9, 10]
        assert _segs(d) == ["00000001.seg", "00000004.seg", "00000007.seg", "0000000a.seg"]
        ob = Outbox(d, max_records=100, segment_records=3)
        assert _seqs(ob) == list(range(1, 11))


def test_cut_during_segment_rewrite():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=10)
        _fill(ob, 4)
        path = _seg_path(d, 1)
        good = read_bytes(path)
        write_bytes(path + ".tmp", good[:17])  # a rewrite cut short: original intact
        write_bytes(path, b"\x00\x01", "ab")
        ob = Outbox(d, max_records=100, segment_records=10)
        assert _seqs(ob) == [1, 2, 3, 4] and read_bytes(path) == good
        assert files(d) == ["00000001.seg", "state"]
        os.rename(path, path + ".tmp")  # FAT: the original removed, the copy not yet renamed
        ob = Outbox(d, max_records=100, segment_records=10)
        assert _seqs(ob) == [1, 2, 3, 4] and files(d) == ["00000001.seg", "state"]


def test_foreign_files_are_left_alone():
    with ScratchDir("ob") as d:
        write_bytes(d + "/README", b"hello")
        write_bytes(d + "/zzzzzzzz.seg", b"not ours")
        ob = Outbox(d)
        assert ob.append(b"a") == 1
        assert "README" in files(d) and "zzzzzzzz.seg" in files(d)


# -- resources -------------------------------------------------------------------------------------


def test_records_iterates_in_batches_and_sees_acks_meanwhile():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=100, segment_records=4)
        _fill(ob, 11)
        seen = []
        for seq, payload in ob.records(batch=3):
            assert payload == _payload(seq)
            seen.append(seq)
            ob.ack(seq)
            if seq == 5:
                ob.append(_payload(12))
        assert seen == list(range(1, 13)) and ob.pending() == 0


def test_append_allocates_nothing():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=1000, segment_records=200)
        payload = b'{"seq":1,"ts":1764270000,"sensors":{"bme":{"temperature":21.53}}}'
        ob.append(payload)
        per = heap_allocated(lambda: ob.append(payload), repeat=50)
        if per is None:  # CPython cannot say
            for _ in range(50):
                ob.append(payload)
        else:  # MicroPython: measured, not guessed
            per = per / 50
            print("outbox: %d heap bytes per append" % per)
            assert per == 0, per
            ob.oldest(1)  # a read closes the segment: the next append opens it again
            again = heap_allocated(lambda: ob.append(payload))
            print("outbox: %d heap bytes for an append after a read" % again)
            assert 0 < again <= 160, again
        n = ob.last_seq
        assert n in (51, 52)
        # bytes on flash per record: the payload plus RECORD_OVERHEAD
        assert atomic.size(_seg_path(d, 1)) == n * (len(payload) + RECORD_OVERHEAD)
        assert _seqs(ob) == list(range(1, n + 1))


def test_state_file_writes_are_batched():
    with ScratchDir("ob") as d:
        ob = Outbox(d, max_records=1000, segment_records=1000, ack_persist_every=8)
        _fill(ob, 40)
        state = read_bytes(d + "/state")
        _fill(ob, 40)
        assert read_bytes(d + "/state") == state  # appends inside a segment write no state
        for seq in range(1, 8):
            ob.ack(seq)
        assert read_bytes(d + "/state") == state
        ob.ack(8)
        assert read_bytes(d + "/state") != state


def test_a_new_node_id_starts_a_new_life_and_keeps_the_old_ids_records():
    """A board re-deployed under a new node id: seq from 1 for the new id, the old id's
    records kept aside (outbox.<old id>), and taken up again, seq resuming, when the board
    goes back to the old id (firmware/outbox.adopt, called by the node at boot)."""
    from firmware.outbox import adopt

    with ScratchDir("ob") as d:
        box = d + "/outbox"
        assert adopt(box, "lamp-1") == []
        ob = Outbox(box)
        _fill(ob, 3)
        ob.ack(1)
        ob.sync()
        assert adopt(box, "lamp-1") == []  # same id: nothing moves
        assert Outbox(box).next_seq == 4
        assert adopt(box, "lamp-2") == ["lamp-1"]
        ob = Outbox(box)
        assert ob.next_seq == 1 and ob.pending() == 0
        assert ob.append(b"first of lamp-2") == 1
        ob.sync()
        assert sorted(n for n in files(d)) == ["outbox", "outbox.lamp-1"]
        assert adopt(box, "lamp-1") == ["lamp-2"]
        ob = Outbox(box)
        assert ob.next_seq == 4 and [s for s, _ in ob.oldest(10)] == [2, 3]
        assert adopt(box, "lamp-2") == ["lamp-1"]
        assert Outbox(box).next_seq == 2
