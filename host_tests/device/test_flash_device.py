# The simulated board flash (hal/sim/flash.py) and the outbox on a full, failing or
# read-only flash. The block device tests run on both interpreters; the LittleFS ones
# (vfs.VfsLfs2) only where the interpreter has it: the MicroPython unix port.

from hal.sim import flash
from host_tests.device.scratch import remove_tree, scratch_dir

_EIO = 5
_BS = flash.BLOCK_SIZE


def _device(blocks=8, **kwargs):
    d = scratch_dir("fl")
    return d, flash.FileFlash(d + "/flash.img", size=blocks * _BS, **kwargs)


def _lfs():
    try:
        import vfs
    except ImportError:
        return None
    return getattr(vfs, "VfsLfs2", None) and vfs


def test_a_new_image_is_erased_and_has_the_size_asked_for():
    d, dev = _device(8)
    try:
        assert dev.ioctl(4, 0) == 8 and dev.ioctl(5, 0) == _BS and dev.size == 8 * _BS
        buf = bytearray(_BS)
        dev.readblocks(7, buf)
        assert buf == b"\xff" * _BS
    finally:
        dev.close()
        remove_tree(d)


def test_bad_sizes_and_addresses_are_refused_clearly():
    d = scratch_dir("fl")
    try:
        for size in (0, _BS, 3 * _BS + 1):
            try:
                flash.FileFlash(d + "/x.img", size=size)
            except ValueError as e:
                assert "multiple of 4096" in str(e), e
            else:
                raise AssertionError("size %d accepted" % size)
        dev = flash.FileFlash(d + "/y.img", size=4 * _BS)
        try:
            dev.readblocks(4, bytearray(16))
        except ValueError as e:
            assert "outside the device" in str(e)
        else:
            raise AssertionError("a read past the end was accepted")
        dev.close()
    finally:
        remove_tree(d)


def test_programs_at_an_offset_erases_and_survives_a_reopen():
    d, dev = _device(4)
    try:
        data = bytes(range(256)) * 3  # 768 bytes across page boundaries
        assert dev.writeblocks(1, data, 100) == 0
        assert dev.programs == 1 and dev.bytes_programmed == 768
        dev.close()
        dev = flash.FileFlash(d + "/flash.img")
        buf = bytearray(768)
        dev.readblocks(1, buf, 100)
        assert bytes(buf) == data
        head = bytearray(100)
        dev.readblocks(1, head)
        assert head == b"\xff" * 100
        assert dev.ioctl(6, 1) == 0  # erase
        dev.readblocks(1, buf, 100)
        assert buf == b"\xff" * 768 and dev.erases == 1
        # the simple interface: whole blocks, erased first
        assert dev.writeblocks(2, b"\x01" * _BS) == 0
        blk = bytearray(_BS)
        dev.readblocks(2, blk)
        assert blk == b"\x01" * _BS
    finally:
        dev.close()
        remove_tree(d)


def test_injected_faults_answer_eio_and_change_nothing():
    d, dev = _device(4)
    try:
        dev.faults.fail(2)  # the second program from now
        assert dev.writeblocks(0, b"a" * 32, 0) == 0
        assert dev.writeblocks(0, b"b" * 32, 32) == -_EIO
        buf = bytearray(32)
        dev.readblocks(0, buf, 32)
        assert buf == b"\xff" * 32  # the failed program wrote nothing
        assert dev.writeblocks(0, b"c" * 32, 64) == 0
        dev.faults.every(3)
        got = [dev.writeblocks(1, b"x" * 16, 16 * i) for i in range(6)]
        assert got == [0, 0, -_EIO, 0, 0, -_EIO], got
        dev.faults.clear()
        dev.faults.read_only = True
        assert dev.ioctl(6, 2) == -_EIO and dev.writeblocks(2, b"y" * 16, 0) == -_EIO
        assert dev.write_errors == 5
        dev.readblocks(0, buf, 0)
        assert buf == b"a" * 32  # reads still work
    finally:
        dev.close()
        remove_tree(d)


def test_littlefs_mounts_fills_and_remounts():
    vfs = _lfs()
    if vfs is None:
        return  # CPython: no LittleFS here (the block device itself is tested above)
    import os

    d = scratch_dir("fl")
    try:
        dev, report = flash.mount(d + "/flash.img", "/t_lfs", size=32 * _BS)
        assert report is None
        with open("/t_lfs/keep.txt", "w") as f:
            f.write("kept")
        n = 0
        try:
            with open("/t_lfs/big", "wb") as f:
                while True:
                    f.write(b"z" * 1024)
                    f.flush()
                    n += 1
        except OSError as e:
            assert e.args[0] == 28, e
        total, free = flash.usage("/t_lfs")
        assert total == 32 * _BS and free < 2 * _BS and 100 < n < 128, (free, n)
        vfs.umount("/t_lfs")
        dev.close()
        dev, report = flash.mount(d + "/flash.img", "/t_lfs")
        assert open("/t_lfs/keep.txt").read() == "kept" and report is None
        os.remove("/t_lfs/big")
        assert flash.usage("/t_lfs")[1] > 24 * _BS
        vfs.umount("/t_lfs")
        dev.close()
    finally:
        remove_tree(d)


def test_an_image_that_does_not_mount_is_set_aside_and_formatted():
    vfs = _lfs()
    if vfs is None:
        return
    import os

    d = scratch_dir("fl")
    try:
        flash.create(d + "/flash.img", 16 * _BS)  # erased: no file system on it
        dev, report = flash.mount(d + "/flash.img", "/t_bad")
        assert "set aside" in report, report
        assert os.stat(d + "/flash.img.corrupt")[6] == 16 * _BS
        assert os.listdir("/t_bad") == []
        vfs.umount("/t_bad")
        dev.close()
    finally:
        remove_tree(d)


def test_outbox_on_a_full_littlefs_gives_seqs_and_never_raises():
    vfs = _lfs()
    if vfs is None:
        return
    from firmware.outbox import Outbox

    d = scratch_dir("fl")
    try:
        dev, _ = flash.mount(d + "/flash.img", "/t_full", size=32 * _BS)
        box = Outbox("/t_full/outbox", max_records=1000, segment_records=10, reserve_bytes=2 * _BS)
        payload = b'{"t": 21.5, "pad": "' + b"x" * 150 + b'"}'
        seqs = [box.append(payload) for _ in range(30)]
        assert seqs == list(range(1, 31)) and box.committed and box.pending() == 30
        jig = flash.FlashJig(dev, "/t_full", [{"kind": "fill", "at_s": 0}])
        jig.tick()  # something else takes every free byte
        for i in range(200):
            assert box.append(payload) == 31 + i and box.committed
            jig._top_up()  # and keeps taking what the outbox frees
        # the outbox made room by dropping its oldest segments, and counted them
        assert box.dropped >= 200 and box.pending() + box.dropped == 230 and box.pending() <= 20
        kept = [s for s, _ in box.records(batch=8)]
        assert kept == list(range(231 - len(kept), 231)), kept  # the newest are kept
        # A second outbox that finds no room even for its directory: nothing can be
        # committed, yet every record gets its seq, and the seqs stay known.
        other = Outbox("/t_full/other", segment_records=10)
        got = [other.append(payload) for _ in range(5)]
        assert got == [1, 2, 3, 4, 5] and not other.committed and other.full and other.pending() == 0
        for s in got:
            other.let_go(s)
        assert other.dropped == 5
        jig._release()  # freed: commits again, and the seq goes on
        assert other.append(payload) == 6 and other.committed and other.pending() == 1
        box.sync()
        other.sync()
        vfs.umount("/t_full")
        dev.close()
        dev, _ = flash.mount(d + "/flash.img", "/t_full")
        again = Outbox("/t_full/other", segment_records=10)
        assert again.next_seq == 7 and [s for s, _ in again.records()] == [6], again.next_seq
        again = Outbox("/t_full/outbox", max_records=1000, segment_records=10)
        assert again.next_seq == 231
        vfs.umount("/t_full")
        dev.close()
    finally:
        remove_tree(d)


def test_outbox_on_a_read_only_or_failing_littlefs_stays_usable():
    vfs = _lfs()
    if vfs is None:
        return
    from firmware.outbox import Outbox

    d = scratch_dir("fl")
    try:
        dev, _ = flash.mount(d + "/flash.img", "/t_ro", size=32 * _BS)
        box = Outbox("/t_ro/outbox", segment_records=5)
        for _ in range(7):
            box.append(b"before")
        box.sync()
        dev.faults.every(2)  # a worn chip: every other write fails
        got = [box.append(b"worn") for _ in range(20)]
        assert got == list(range(8, 28)) and box.write_errors > 0
        dev.faults.clear()
        dev.faults.read_only = True
        box2 = Outbox("/t_ro/outbox", segment_records=5)  # a boot on a locked flash
        assert box2.next_seq >= 8
        s = box2.append(b"locked")
        assert not box2.committed and box2.write_errors > 0 and s >= 8
        assert box2.oldest(2) == [(1, b"before"), (2, b"before")]  # what it holds still goes out
        vfs.umount("/t_ro")
        dev.close()
    finally:
        remove_tree(d)


class _Refusing:
    """Stands in for open() in firmware.outbox and firmware.atomic: writes fail with errno
    once switched on (a full or failing flash on any file system, both interpreters)."""

    def __init__(self):
        self.errno = 0
        self.real = open

    def __call__(self, path, mode="r"):
        if self.errno and ("w" in mode or "a" in mode):
            raise OSError(self.errno, "refused")
        f = self.real(path, mode)
        return _RefusingFile(f, self) if "w" in mode or "a" in mode else f


class _RefusingFile:
    def __init__(self, f, switch):
        self.f = f
        self.switch = switch

    def write(self, data):
        if self.switch.errno:
            raise OSError(self.switch.errno, "refused")
        return self.f.write(data)

    def flush(self):
        return self.f.flush()

    def fileno(self):
        return self.f.fileno()

    def close(self):
        return self.f.close()


def test_outbox_on_a_refusing_host_directory_gives_seqs_and_never_raises():
    import firmware.atomic
    import firmware.outbox
    from firmware.outbox import Outbox

    refuse = _Refusing()
    d = scratch_dir("fl")
    firmware.outbox.open = refuse
    firmware.atomic.open = refuse
    try:
        box = Outbox(d + "/outbox", segment_records=4)
        assert [box.append(b"ok") for _ in range(6)] == [1, 2, 3, 4, 5, 6] and box.committed
        refuse.errno = 28  # full
        assert box.append(b"lost?") == 7 and not box.committed and box.full and box.write_errors == 0
        assert box.dropped == 4  # it let its oldest segment (1..4) go to make room, in vain
        box.let_go(7)
        refuse.errno = _EIO  # failing
        assert box.append(b"worn") == 8 and not box.committed and box.write_errors >= 1
        assert [s for s, _ in box.oldest(6)] == [5, 6]
        for s in (5, 6):
            assert box.ack(s)  # acks go on even though their state cannot be written
        box.sync()
        assert box.dropped == 5 and box.pending() == 0
        refuse.errno = 0
        assert box.append(b"again") == 9 and box.committed and not box.full
        box.sync()
        again = Outbox(d + "/outbox", segment_records=4)
        assert again.next_seq == 10 and [s for s, _ in again.records()] == [9]
    finally:
        del firmware.outbox.open
        del firmware.atomic.open
        remove_tree(d)
