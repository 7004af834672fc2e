# The outbox: every sampling cycle's record is committed to flash before it is
# published, and leaves only when the broker acknowledged it: a record's seq is never
# lost while the outbox has room, and `dropped` counts every record let go.
#
#     box = Outbox("/flash/outbox", max_records=1000)
#     seq = box.append(payload)          # on flash when this returns
#     for seq, payload in box.oldest(4): # the oldest unacknowledged, in seq order
#         publish(payload)               # ... and when its PUBACK arrives:
#     box.ack(seq)
#
# Promises (what host_tests/device/test_outbox.py and host_tests/test_outbox_*.py prove):
# - seq starts at 1 and grows by exactly 1 per append for the node's whole life; it never
#   repeats or goes backwards across reboots and power cuts, even if every segment file
#   is lost (the state file keeps the high-water mark and the reserved block).
# - A record is durable when append() returns. A power cut during an append costs that
#   one record (its seq is then given to the next append, since nobody ever saw it);
#   every earlier record survives.
# - The newest max_records records are always kept (and fewer than max_records +
#   segment_records are on flash): once they fit without the oldest segment, it goes,
#   and `dropped` counts its unacknowledged records. That happens after the append that
#   needed the room is committed, so a cut during that append costs no older record. Corrupt records found
#   on flash (bit rot) are skipped, never returned, and counted in `dropped` too:
#   `dropped` is the number of seqs below next_seq the broker will never receive.
# - Acks may come out of order or twice. The ack position is persisted every
#   `ack_persist_every` acks, when a segment is released, and by sync(); after a power cut
#   up to that many acknowledged records are published again (the contract's harmless
#   redelivery). Out-of-order acks beyond the ack position live in RAM only.
#
# On flash (a directory of its own):
#   state            "S1 <crc32 hex> <json>\n", written atomically (firmware/atomic.py):
#                    next seq, ack position, dropped, the active segment and its
#                    reserved seq block, and the lost seqs already counted in dropped
#   <first seq, 8 hex digits>.seg   append-only segments of records:
#                    magic a5 53 | payload length u16 | seq u32 | payload | crc32 u32
#                    (little-endian; the CRC covers header and payload: 12 bytes per record)
# Segments hold the seqs [first, next segment's first); the newest one is "active" and
# takes the appends until segment_records seqs have gone into it.
#
# A full or failing flash (issue 17) never stops the node: the outbox keeps `reserve_bytes`
# of the file system free for the config and the node state by dropping its oldest
# segment before it opens a new one (bounded by the space it can have, as well as by
# max_records); an append the flash refuses (ENOSPC even after dropping, EIO, a
# read-only flash) still gives the record its seq, with `committed` False: the caller
# publishes it from RAM and calls let_go(seq) if it never could (counted in `dropped`).
# Such a seq is a gap on flash from the start, persisted when the state file can still
# be written (a small file: on a full LittleFS it still fits in the directory's
# metadata). `full` says the last append met a full flash, `write_errors` counts the
# writes that failed otherwise; no write failure raises out of the outbox.
#
# RAM is bounded whatever the outbox holds: the list of segment first seqs, the seq
# ranges known lost, at most 64 out-of-order acks, and fixed header/CRC/copy buffers.
# Files are read record by record, never whole. The active segment stays open for
# appending until something is read (then it is closed, so that no file system sees two
# handles on one file), so an append allocates nothing (0 bytes measured on the unix
# port; opening the file again after a read costs ~100 bytes, the file object and a
# copy of its path; on a 32-bit board a CRC above 2**30 is a 16-byte long int).

import binascii
import json
import os
import struct

from firmware import atomic

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_MAGIC = const(0x53A5)  # bytes a5 53: not ASCII, so JSON payloads do not contain it
_MAGIC_BYTES = b"\xa5\x53"
_HDR_FMT = "<HHI"  # magic, payload length, seq
_HDR_SIZE = const(8)
_CRC_SIZE = const(4)
RECORD_OVERHEAD = const(12)  # flash bytes per record besides the payload
_MAX_PAYLOAD = const(65535)
_OOO_MAX = const(64)
_STATE_MAX = const(8192)
_ENOENT = const(2)
_EEXIST = const(17)
_ENOSPC = const(28)
_EIO = const(5)
_SEG_SUFFIX = ".seg"
_STATE_NAME = "state"


def _seg_name(first):
    return "%08x.seg" % first


def _makedirs(path):
    at = ""
    for part in path.split("/"):
        at = at + part + "/" if at or part else "/"
        if not part:
            continue
        try:
            os.mkdir(at[:-1])
        except OSError as e:
            if e.args[0] != _EEXIST:
                raise


_OWNER = "node_id"  # in an outbox directory: the node id whose seqs it holds


def adopt(directory, node_id):
    """Make `directory` (the node's outbox) node_id's before an Outbox opens it. A node id
    starts a life of its own (CONTRACT.md: seq from 1, growing for that id's whole life): a
    board deployed under a new id moves the old id's outbox aside to `directory.<old id>`,
    records and seq position intact, and takes up the new id's own one if it had one (a
    board deployed back under its old id resumes its seq and publishes what waited).
    Returns the ids whose outboxes are kept beside it. Each step is a rename, and the owner
    file moves with its directory, so a power cut between steps is finished next boot. An
    outbox without an owner file (older firmware) is taken as node_id's."""
    owner = None
    try:
        data = atomic.read(directory + "/" + _OWNER, 64)
        owner = data.decode().strip() if data else None
    except (OSError, ValueError, UnicodeError):
        pass
    if owner and owner != node_id and not atomic.exists(directory + "." + owner):
        os.rename(directory, directory + "." + owner)
        owner = None
    if not atomic.exists(directory) and atomic.exists(directory + "." + node_id):
        os.rename(directory + "." + node_id, directory)
        owner = node_id
    if owner != node_id:
        try:
            _makedirs(directory)
            atomic.write(directory + "/" + _OWNER, node_id)
        except OSError:  # a full or read-only flash: the outbox reports that itself
            pass
    cut = directory.rfind("/")
    parent, base = (directory[:cut] or "/", directory[cut + 1:]) if cut >= 0 else (".", directory)
    kept = []
    try:
        for name in os.listdir(parent):
            if name.startswith(base + ".") and not name.endswith(atomic.TMP_SUFFIX):
                kept.append(name[len(base) + 1:])
    except OSError:
        pass
    kept.sort()
    return kept


class Outbox:
    def __init__(self, directory, max_records=1000, segment_records=50, max_payload=4096, ack_persist_every=8,
                 reserve_bytes=16384):
        if max_records < 1 or segment_records < 1 or ack_persist_every < 1:
            raise ValueError("outbox: max_records, segment_records and ack_persist_every must be >= 1")
        if not 1 <= max_payload <= _MAX_PAYLOAD:
            raise ValueError("outbox: max_payload must be 1..%d, not %r" % (_MAX_PAYLOAD, max_payload))
        self._dir = directory.rstrip("/") or "/"
        self._segment_records = min(segment_records, max_records)
        self.max_records = max_records
        self._max_payload = max_payload
        self._ack_persist_every = ack_persist_every
        self.reserve_bytes = reserve_bytes
        self._hdr = bytearray(_HDR_SIZE)
        self._crc = bytearray(_CRC_SIZE)
        self._chunk = bytearray(128)
        self._chunk_mv = memoryview(self._chunk)
        self._segs = []  # first seq of every segment file, ascending; the last is active
        self._gaps = []  # [first, last] seq ranges > acked lost on flash, already in dropped
        self._ooo = []  # seqs > acked + 1 acknowledged out of order
        self._active_path = None
        self._appender = None  # the active segment open for appending, closed before any read
        self._reserved = 0  # the active segment takes seqs below this
        self._persisted = None
        self._cursor_first = -1  # where reading resumes: all records before it are acked
        self._cursor_pos = 0
        self._cursor_expect = 0
        # The last record a read returned and where it ended: [seq, segment, pos, expect]
        self._resume = [-1, -1, 0, 0]
        self._len = 0
        self._at = 0
        self._payload = None
        self.repairs = 0  # damaged stretches of segment files cut out when opening
        self.state_error = None  # why the state file could not be used, if it could not
        self.trim_error = None  # an OSError that kept the oldest segment from being dropped
        self.committed = True  # whether the last append reached the flash
        self.full = False  # the last append found the flash full
        self.write_errors = 0  # writes the flash refused for another reason than space (EIO)
        self.last_error = None  # the last OSError of a write, for health
        self._dir_ok = False  # made again by the next append when the flash had no room
        try:
            _makedirs(self._dir)
            self._dir_ok = True
        except OSError as e:
            self._failed(e)
        self._open()

    # -- public interface ----------------------------------------------------------------

    @property
    def last_seq(self):
        """The highest seq ever given out (0 before the first append)."""
        return self.next_seq - 1

    def pending(self):
        """Number of records waiting to be published and acknowledged."""
        n = self.next_seq - 1 - self.acked - len(self._ooo)
        for g in self._gaps:
            n -= g[1] - g[0] + 1
        return n

    def append(self, payload):
        """Give the record the next seq and commit it to flash; returns the seq."""
        if isinstance(payload, str):
            raise TypeError("outbox: a record is bytes, not str")
        n = len(payload)
        if n > self._max_payload:
            raise ValueError("outbox: a record of %d bytes is more than max_payload %d" % (n, self._max_payload))
        seq = self.next_seq
        struct.pack_into(_HDR_FMT, self._hdr, 0, _MAGIC, n, seq)
        struct.pack_into("<I", self._crc, 0, binascii.crc32(payload, binascii.crc32(self._hdr)))
        try:
            self._commit(seq, payload)
        except OSError as e:
            # Nothing can be committed: the record keeps its seq and goes out from RAM.
            self._failed(e)
            self.committed = False
            self.next_seq = seq + 1
            self._ooo.append(seq)  # so that the gap below is not counted as dropped
            self._add_gap(seq, seq)
            self._advance()
            self._persist()  # the seq is given out: a reboot must not give it again
            return seq
        self.committed = True
        self.full = False
        self.next_seq = seq + 1
        # Make room only now: a cut during the write must not cost an older record too.
        while len(self._segs) >= 2 and self.next_seq - self._segs[1] >= self.max_records:
            try:
                self._drop_oldest()
                self.trim_error = None
            except OSError as e:  # the record is committed: tried again at the next append
                self.trim_error = e
                break
        return seq

    def _commit(self, seq, payload):
        if not self._dir_ok:
            _makedirs(self._dir)
            self._dir_ok = True
        if self._active_path is None or seq >= self._reserved:
            self._make_room()
            self._new_segment(seq)
        try:
            self._write(payload)
        except OSError as e:
            if e.args[0] == _ENOSPC:
                if len(self._segs) < 2:
                    raise
                # Flash full: let the oldest segment go and try once more. A partial record
                # left by the failed write is followed by this one; reading skips it.
                self._drop_oldest()
            else:
                self._failed(e)  # a worn block: LittleFS writes elsewhere on the retry
            self._write(payload)

    def _failed(self, e):
        if e.args[0] == _ENOENT and not self._dir_ok:
            return  # no outbox directory: there was no room to make it (already counted full)
        self.last_error = e
        if e.args[0] == _ENOSPC:
            self.full = True
        else:
            self.write_errors += 1

    def _make_room(self):
        """Before a new segment: keep reserve_bytes free for the other files on flash."""
        while len(self._segs) >= 2:
            free = self.free_bytes()
            if free is None or free >= self.reserve_bytes:
                return
            self._drop_oldest()

    def let_go(self, seq):
        """A record that append() could not commit (committed False) will never be
        published: count it in dropped."""
        self.dropped += 1

    def free_bytes(self):
        """Free bytes of the file system holding the outbox (None where unknown)."""
        statvfs = getattr(os, "statvfs", None)
        if statvfs is None:
            return None
        try:
            st = statvfs(self._dir)
        except OSError:
            return None
        free = st[3]
        if free > st[2]:
            free = 0  # a completely full LittleFS answers a negative count
        return st[0] * free

    def oldest(self, n=1, after=None):
        """Up to n of the oldest unacknowledged records as a list of (seq, payload), in
        seq order; with `after`, only records above that seq (those after the ones a
        sender has in flight). Only these n payloads are held in RAM. Reading on from the
        last record returned resumes where that read stopped."""
        return self._read(self.acked if after is None or after < self.acked else after, n)

    def records(self, batch=4):
        """Every unacknowledged record as (seq, payload), oldest first, read `batch` at a
        time with the file closed in between (so appends and acks may happen meanwhile)."""
        after = self.acked
        while True:
            got = self._read(max(after, self.acked), batch)
            if not got:
                return
            for record in got:
                yield record
            after = got[-1][0]

    def ack(self, seq):
        """The broker has the record `seq` (PUBACK). Returns False for a seq that is not
        waiting: already acknowledged, dropped, lost or never given out."""
        if seq <= self.acked or seq >= self.next_seq or seq in self._ooo or self._in_gaps(seq):
            return False
        if seq == self.acked + 1:
            self.acked = seq
            self._advance()
        elif len(self._ooo) < _OOO_MAX:
            self._ooo.append(seq)
        else:
            return False  # remembered once the ack position gets there: a redelivery at worst
        if len(self._segs) >= 2 and self._segs[1] <= self.acked + 1:
            self._persist()
            self._release()
        elif self.acked - self._persisted[1] >= self._ack_persist_every:
            self._persist()
        return True

    def sync(self):
        """Persist the ack position now and close the open segment (before a reboot or
        deep sleep). The outbox stays usable."""
        self._close_appender()
        if self._state_tuple() != self._persisted:
            self._persist()

    close = sync

    # -- opening and repair ---------------------------------------------------------------

    def _path(self, name):
        return self._dir + "/" + name

    def _open(self):
        segs = []
        try:
            names = os.listdir(self._dir)
        except OSError as e:  # no directory: it could not be made (a full or read-only flash)
            self._failed(e)
            names = []
        for name in names:
            if name.endswith(_SEG_SUFFIX + atomic.TMP_SUFFIX):
                # a segment rewrite cut short: the original is intact (or, on FAT, gone
                # while the complete copy waits: promote it)
                base = self._path(name[: -len(atomic.TMP_SUFFIX)])
                try:
                    if atomic.exists(base):
                        atomic.remove(self._path(name))
                    else:
                        os.rename(self._path(name), base)
                        name = name[: -len(atomic.TMP_SUFFIX)]
                except OSError as e:  # a read-only flash: the original is intact
                    self._failed(e)
                    continue
            if len(name) == 12 and name.endswith(_SEG_SUFFIX):
                try:
                    first = int(name[:8], 16)
                except ValueError:
                    continue
                if first >= 1 and first not in segs:
                    segs.append(first)
        segs.sort()
        self._segs = segs

        st = self._read_state()
        if st is None:
            nxt, acked, dropped, lost, st_active, st_reserved = 1, -1, 0, [], 0, 0
        else:
            nxt, acked, dropped, lost, st_active, st_reserved = st
        found = []  # (first, last) ranges of seqs missing from the segments
        dirty = []
        expect = 0
        for i in range(len(segs)):
            limit = segs[i + 1] if i + 1 < len(segs) else None
            expect, bad = self._scan(segs[i], limit, found)
            if bad:
                dirty.append(i)
            if limit is not None and expect < limit:
                found.append((expect, limit - 1))
        if segs:
            nxt = max(nxt, expect)
        newest = segs[-1] if segs else 0
        active_lost = st_active and st_active not in segs and newest < st_active
        if active_lost:
            # The active segment vanished: any seq of its reserved block may have been
            # given out, so none of them may be given again.
            nxt = max(nxt, st_reserved)
        if acked < 0:  # no state: publish everything that is retained again
            acked = segs[0] - 1 if segs else nxt - 1
            if segs and self.state_error is None:
                self.state_error = "outbox state file missing: records published again, dropped counted from 0"
        acked = min(acked, nxt - 1)
        if segs and acked + 1 < segs[0]:
            found.append((acked + 1, segs[0] - 1))
        top = expect if segs else acked + 1
        if top < nxt:
            found.append((top, nxt - 1))

        self.next_seq = nxt
        self.acked = acked
        self.dropped = dropped
        self._ooo = []
        self._gaps = [g for g in lost if g[1] > acked]
        if self._gaps and self._gaps[0][0] <= acked:
            self._gaps[0][0] = acked + 1
        for a, b in found:
            self._add_gap(a, b)
        self._advance()
        if segs and not active_lost:
            self._active_path = self._path(_seg_name(newest))
            self._reserved = st_reserved if st_active == newest else newest + self._segment_records
        else:
            self._active_path = None
            self._reserved = 0
        self._persisted = st and (st[0], st[1], st[2], st[4], st[5], st[3])
        if self._state_tuple() != self._persisted:
            self._persist()
        if self._persisted is None:  # no state on flash and none could be written
            self._persisted = (0, -1, 0, 0, 0, [])
        for i in dirty:
            try:
                self._rewrite(i)
            except OSError as e:  # no room or a failing flash: reading skips the damage anyway
                self._failed(e)
        self._release()

    def _read_state(self):
        st = self._read_state_file(self._path(_STATE_NAME))
        # Where the state went when the flash had no room for the outbox directory:
        spare = self._read_state_file(self._dir + "." + _STATE_NAME)
        if spare is not None and (st is None or spare[0] > st[0]):
            return spare
        return st

    def _read_state_file(self, path):
        try:
            data = atomic.read(path, _STATE_MAX)
        except ValueError as e:
            self.state_error = str(e)
            return None
        if data is None:
            return None
        try:
            if data[:3] != b"S1 " or data[11:12] != b" ":
                raise ValueError("not an outbox state file")
            body = data[12:-1] if data[-1:] == b"\n" else data[12:]
            if int(data[3:11], 16) != binascii.crc32(body):
                raise ValueError("checksum mismatch")
            d = json.loads(body)
            st = (d["next"], d["acked"], d["dropped"], d["lost"], d["active"], d["reserved"])
            for v in st[:3] + st[4:]:
                if type(v) is not int or v < 0:
                    raise ValueError("bad field")
            lost = []
            for g in st[3]:
                if type(g[0]) is not int or type(g[1]) is not int or not 0 < g[0] <= g[1] < st[0]:
                    raise ValueError("bad lost range")
                if lost and g[0] <= lost[-1][1]:
                    raise ValueError("lost ranges out of order")
                lost.append([g[0], g[1]])
            if st[0] < 1 or st[1] >= st[0]:
                raise ValueError("bad seq fields")
        except (ValueError, KeyError, TypeError, IndexError) as e:
            self.state_error = "outbox state file unusable: %s" % e
            return None
        return st[0], st[1], st[2], lost, st[4], st[5]

    def _state_tuple(self):
        active = self._segs[-1] if self._active_path is not None else 0
        return (self.next_seq, self.acked, self.dropped, active, self._reserved, self._gaps)

    def _persist(self):
        t = self._state_tuple()
        body = json.dumps(
            {"next": t[0], "acked": t[1], "dropped": t[2], "active": t[3], "reserved": t[4], "lost": t[5]}
        )
        try:
            data = "S1 %08x %s\n" % (binascii.crc32(body.encode()), body)
            if self._dir_ok:
                atomic.write(self._path(_STATE_NAME), data)
            else:  # beside the directory that could not be made: the seqs given out must stay known
                atomic.write(self._dir + "." + _STATE_NAME, data)
        except OSError as e:  # kept in RAM and written again at the next chance
            self._failed(e)
            return False
        self._persisted = (t[0], t[1], t[2], t[3], t[4], [[g[0], g[1]] for g in t[5]])
        return True

    # -- reading records --------------------------------------------------------------------

    def _check(self, f, pos, size, keep_after):
        """The seq of the valid record at pos, or -1. Its payload is read into
        self._payload when seq > keep_after, else only checked in chunks."""
        if size - pos < RECORD_OVERHEAD:
            return -1
        f.seek(pos)
        hdr = self._hdr
        if f.readinto(hdr) != _HDR_SIZE:
            return -1
        magic, n, seq = struct.unpack_from(_HDR_FMT, hdr, 0)
        if magic != _MAGIC or n > self._max_payload or pos + RECORD_OVERHEAD + n > size:
            return -1
        crc = binascii.crc32(hdr)
        payload = None
        if seq > keep_after:
            payload = f.read(n)
            if len(payload) != n:
                return -1
            crc = binascii.crc32(payload, crc)
        else:
            left = n
            size_chunk = len(self._chunk)
            while left:
                k = left if left < size_chunk else size_chunk
                part = self._chunk_mv[:k] if k < size_chunk else self._chunk
                if f.readinto(part) != k:
                    return -1
                crc = binascii.crc32(part, crc)
                left -= k
        if f.readinto(self._crc) != _CRC_SIZE or struct.unpack_from("<I", self._crc, 0)[0] != crc:
            return -1
        self._len = n
        self._payload = payload
        return seq

    def _find(self, f, pos, size, keep_after):
        """The first valid record at or after pos (its offset in self._at), or -1."""
        seq = self._check(f, pos, size, keep_after)
        if seq >= 0:
            self._at = pos
            return seq
        chunk = self._chunk
        p = pos + 1
        while p + RECORD_OVERHEAD <= size:
            f.seek(p)
            got = f.readinto(chunk)
            if got < 2:
                break
            i = chunk.find(_MAGIC_BYTES, 0, got)
            if i < 0:
                p += got - 1  # the magic may straddle the chunk boundary
                continue
            seq = self._check(f, p + i, size, keep_after)
            if seq >= 0:
                self._at = p + i
                return seq
            p += i + 1
        return -1

    def _scan(self, first, limit, found, out=None):
        """Check a whole segment: returns (seq after its last valid record, whether
        anything in it is damaged). Missing seqs go to `found`; with `out`, the valid
        records are copied there."""
        path = self._path(_seg_name(first))
        size = atomic.size(path)
        expect = first
        bad = False
        if size <= 0:
            return expect, bad
        f = open(path, "rb")
        try:
            pos = 0
            while pos < size:
                seq = self._find(f, pos, size, 0x7FFFFFFF)
                if seq < 0:
                    bad = True  # a torn tail or garbage after the last record
                    break
                if self._at != pos:
                    bad = True  # damage in between: records after it are kept
                end = self._at + RECORD_OVERHEAD + self._len
                if seq < expect or (limit is not None and seq >= limit):
                    bad = True  # a record that does not belong here
                else:
                    if seq > expect:
                        found.append((expect, seq - 1))
                    expect = seq + 1
                    if out is not None:
                        self._copy(f, self._at, end, out)
                pos = end
        finally:
            f.close()
        return expect, bad

    def _copy(self, f, start, end, out):
        f.seek(start)
        size_chunk = len(self._chunk)
        while start < end:
            k = end - start
            part = self._chunk_mv[:k] if k < size_chunk else self._chunk
            k = f.readinto(part)
            if not k:
                raise OSError(_EIO, "outbox: segment shrank while being copied")
            out.write(part if k == len(part) else self._chunk_mv[:k])
            start += k

    def _rewrite(self, i):
        """Replace segment i with a copy of its valid records (atomic: a cut before the
        rename leaves the original, which the next open repairs again)."""
        first = self._segs[i]
        limit = self._segs[i + 1] if i + 1 < len(self._segs) else None
        path = self._path(_seg_name(first))
        tmp = path + atomic.TMP_SUFFIX
        out = open(tmp, "wb")
        try:
            self._scan(first, limit, [], out)
            atomic.sync(out)
        finally:
            out.close()
        atomic.replace(tmp, path)
        self.repairs += 1
        self._cursor_first = -1
        self._resume[1] = -1

    def _read(self, after, n):
        out = []
        if n <= 0 or after >= self.next_seq - 1:
            return out
        self._close_appender()  # one handle per file at a time, whatever the file system
        segs = self._segs
        i = 0
        while i + 1 < len(segs) and segs[i + 1] <= after + 1:
            i += 1
        pos, expect = 0, segs[i] if segs else 0
        if self._cursor_first >= 0 and after == self.acked:
            j = i
            while j < len(segs) and segs[j] != self._cursor_first:
                j += 1
            if j < len(segs):
                i, pos, expect = j, self._cursor_pos, self._cursor_expect
        elif self._resume[1] >= 0 and after == self._resume[0]:
            r = self._resume
            j = i
            while j < len(segs) and segs[j] != r[1]:
                j += 1
            if j < len(segs):
                i, pos, expect = j, r[2], r[3]
        while i < len(segs) and len(out) < n:
            first = segs[i]
            limit = segs[i + 1] if i + 1 < len(segs) else self.next_seq
            path = self._path(_seg_name(first))
            size = atomic.size(path)
            ended = True
            f = open(path, "rb") if size > 0 else None
            try:
                while f is not None and pos < size:
                    seq = self._find(f, pos, size, after)
                    if seq < 0:
                        break
                    end = self._at + RECORD_OVERHEAD + self._len
                    pos = end
                    if seq < expect or seq >= limit:
                        continue  # a record that does not belong here
                    if seq > expect:
                        self._lost(expect, seq - 1)  # damaged since the outbox was opened
                    expect = seq + 1
                    if seq <= self.acked:
                        if first >= self._cursor_first:
                            self._cursor_first, self._cursor_pos, self._cursor_expect = first, pos, expect
                        continue
                    if seq <= after or seq in self._ooo or self._in_gaps(seq):
                        continue
                    out.append((seq, self._payload))
                    r = self._resume
                    r[0] = seq
                    r[1] = first
                    r[2] = pos
                    r[3] = expect
                    if len(out) >= n:
                        ended = False
                        break
            finally:
                if f is not None:
                    f.close()
                self._payload = None
            if ended and expect < limit:
                self._lost(expect, limit - 1)
            i += 1
            if i < len(segs):
                pos, expect = 0, segs[i]
        self._release()
        return out

    # -- ack position, gaps and segments ---------------------------------------------------

    def _in_gaps(self, seq):
        for g in self._gaps:
            if g[0] <= seq <= g[1]:
                return True
        return False

    def _add_gap(self, a, b):
        """Record the seqs a..b as lost and count the undelivered ones into dropped;
        returns how many were new."""
        added = 0
        counted = 0
        gaps = self._gaps
        for s in range(max(a, self.acked + 1), b + 1):
            k = 0
            while k < len(gaps) and gaps[k][1] < s - 1:
                k += 1
            if k < len(gaps) and gaps[k][0] <= s <= gaps[k][1]:
                continue
            added += 1
            if s in self._ooo:
                self._ooo.remove(s)  # delivered before it was lost: gone, not dropped
            else:
                counted += 1
            if k < len(gaps) and gaps[k][1] == s - 1:
                gaps[k][1] = s
                if k + 1 < len(gaps) and gaps[k + 1][0] == s + 1:
                    gaps[k][1] = gaps[k + 1][1]
                    gaps.pop(k + 1)
            elif k < len(gaps) and gaps[k][0] == s + 1:
                gaps[k][0] = s
            else:
                gaps.insert(k, [s, s])
        self.dropped += counted
        return added

    def _lost(self, a, b):
        # Found while reading: the segments are released afterwards, by _read.
        if self._add_gap(a, b):
            self._advance()
            self._persist()

    def _advance(self):
        """Move the ack position over seqs acknowledged out of order or lost."""
        while True:
            nxt = self.acked + 1
            if self._gaps and self._gaps[0][0] == nxt:
                self.acked = self._gaps.pop(0)[1]
            elif nxt in self._ooo:
                self._ooo.remove(nxt)
                self.acked = nxt
            else:
                return

    def _release(self):
        """Delete segments whose every seq is at or below the persisted ack position."""
        segs = self._segs
        persisted = self._persisted[1] if self._persisted else -1
        while len(segs) >= 2 and segs[1] <= persisted + 1:
            try:
                atomic.remove(self._path(_seg_name(segs[0])))
            except OSError as e:
                self._failed(e)
                return
            segs.pop(0)

    def _drop_oldest(self):
        """The outbox is full: let the oldest segment go, counting what was unacknowledged."""
        segs = self._segs
        end = segs[1] - 1
        lost = end - self.acked if end > self.acked else 0
        for s in self._ooo:
            if s <= end:
                lost -= 1
        for g in self._gaps:
            if g[0] <= end:
                lost -= (g[1] if g[1] < end else end) - g[0] + 1
        self.dropped += lost
        if end > self.acked:
            self.acked = end
            self._ooo = [s for s in self._ooo if s > end]
            gaps = [g for g in self._gaps if g[1] > end]
            if gaps and gaps[0][0] <= end:
                gaps[0][0] = end + 1
            self._gaps = gaps
            self._advance()
        if not self._persist():
            # The state cannot be written: remove the segment all the same (the space is
            # what is needed); the next open counts its seqs as dropped from the state's
            # older ack position, as they are.
            atomic.remove(self._path(_seg_name(segs[0])))
            segs.pop(0)
            return
        self._release()

    def _new_segment(self, first):
        self._close_appender()
        path = self._path(_seg_name(first))
        # Create the file before the state names it: a cut in between leaves an empty
        # newest segment, which the next open adopts.
        f = open(path, "wb")
        try:
            atomic.sync(f)
        finally:
            f.close()
        if not self._segs or self._segs[-1] != first:
            self._segs.append(first)
        self._active_path = path
        self._reserved = first + self._segment_records
        self._persist()

    def _write(self, payload):
        f = self._appender
        if f is None:
            f = self._appender = open(self._active_path, "ab")
        try:
            f.write(self._hdr)
            f.write(payload)
            f.write(self._crc)
            atomic.sync(f)
        except OSError:
            self._close_appender()
            raise

    def _close_appender(self):
        f = self._appender
        if f is not None:
            self._appender = None
            try:
                f.close()
            except OSError:  # the write that failed before: what it left, reading skips
                pass
