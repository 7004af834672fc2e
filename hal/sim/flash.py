# A board's flash for the simulator: a block device with the interface MicroPython's
# vfs.VfsLfs2 mounts (readblocks/writeblocks/ioctl, the extended interface LittleFS uses:
# program at an offset inside a block, erase a block with ioctl 6), backed by a file on
# the host so that it survives a SIGKILL as a chip survives a power cut.
#
#     dev = FileFlash("/state/sim-1/flash.img", size=ESP32_VFS_BYTES)   # created erased
#     vfs.VfsLfs2.mkfs(dev); vfs.mount(vfs.VfsLfs2(dev), "/flash")
#
# Like NOR flash, a block is programmed page by page (256 bytes, one write() each) and
# erased in two halves, so a SIGKILL can land between two pages of one program or in
# the middle of an erase, leaving a block half-programmed as a power cut does (with
# `pause_us`, a test makes that window wide enough to hit). Data reaches the host file
# with every write() call: a killed process loses nothing it wrote.
#
# Faults, switched like the bus faults (hal/sim/bus.Faults): fail(n, count) makes the
# n-th program or erase from now and count-1 after it answer EIO (a worn block);
# every(k) fails every k-th one (a failing chip); read_only fails them all. A fault is
# answered as LittleFS wants it, a negative errno returned (never raised through the C
# code), which LittleFS passes up as OSError(EIO).
#
# The partition sizes of the boards (MicroPython 1.29):
#   ESP32-DevKitC (4 MiB flash, ESP32_GENERIC): ports/esp32/partitions-4MiBplus.csv ends
#   the factory app at 0x200000 and the "vfs" partition takes the rest: 2 MiB.
#   Pico W: ports/rp2/boards/RPI_PICO_W/mpconfigboard.h, MICROPY_HW_FLASH_STORAGE_BYTES
#   (848 * 1024). Both erase 4 KiB sectors, LittleFS's block size there.

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


import time

from hal.sim.schedule import switch_due

_sleep_us = getattr(time, "sleep_us", None) or (lambda us: time.sleep(us / 1e6))

ESP32_VFS_BYTES = const(2 * 1024 * 1024)
PICO_W_VFS_BYTES = const(848 * 1024)
BOARD_SIZES = {"esp32-devkitc": ESP32_VFS_BYTES, "pico-w": PICO_W_VFS_BYTES}
BLOCK_SIZE = const(4096)
PAGE_SIZE = const(256)
IMAGE_NAME = "flash.img"  # in a node's state directory: the flash of that node
_EIO = const(5)
_ERASED = b"\xff" * PAGE_SIZE


class FlashFaults:
    """Write faults of one flash chip: a program or erase that fails answers EIO."""

    def __init__(self):
        self.read_only = False
        self._fail_at = 0
        self._fail_left = 0
        self._every = 0
        self._count = 0

    def fail(self, n=1, count=1):
        if n < 1 or count < 1:
            raise ValueError("fail: n and count must be >= 1")
        self._fail_at = n
        self._fail_left = count

    def every(self, k):
        """Fail every k-th program or erase (0: none)."""
        if k < 0:
            raise ValueError("every: k must be >= 0")
        self._every = k
        self._count = 0

    def clear(self):
        self.__init__()

    def check(self):
        """Called once per program or erase; True when it must fail."""
        if self.read_only:
            return True
        if self._every:
            self._count += 1
            if self._count >= self._every:
                self._count = 0
                return True
        if self._fail_left:
            self._fail_at -= 1
            if self._fail_at <= 0:
                self._fail_left -= 1
                self._fail_at = 1
                return True
        return False


def create(path, size, block_size=BLOCK_SIZE):
    """A new, erased (all 0xFF) image of `size` bytes, a whole number of blocks."""
    if size < 2 * block_size or size % block_size:
        raise ValueError("flash size must be a multiple of %d bytes and at least 2 blocks, not %d" % (block_size, size))
    f = open(path, "wb")
    try:
        block = b"\xff" * block_size
        for _ in range(size // block_size):
            f.write(block)
    finally:
        f.close()


class FileFlash:
    """The block device. `size` creates the image (erased) when the file is missing;
    the image's size is the flash size."""

    def __init__(self, path, size=None, block_size=BLOCK_SIZE, page_size=PAGE_SIZE, pause_us=0):
        if block_size % page_size:
            raise ValueError("block_size must be a multiple of page_size")
        try:
            f = open(path, "r+b")
        except OSError:
            if size is None:
                raise
            create(path, size, block_size)
            f = open(path, "r+b")
        self.path = path
        self._f = f
        f.seek(0, 2)
        n = f.tell()
        if n < 2 * block_size or n % block_size:
            f.close()
            raise ValueError("%s: %d bytes is not a flash image of %d-byte blocks" % (path, n, block_size))
        self.block_size = block_size
        self.block_count = n // block_size
        self.page_size = page_size
        self.pause_us = pause_us  # between the pages of one program: a window for a kill
        self.on_page = None  # called between the pages of one program (tests)
        self.on_programmed = None  # called when a program of several pages is complete (tests)
        self.faults = FlashFaults()
        self.programs = 0
        self.erases = 0
        self.write_errors = 0  # programs and erases answered with EIO
        self.bytes_read = 0
        self.bytes_programmed = 0

    @property
    def size(self):
        return self.block_size * self.block_count

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None

    def _check(self, block, offset, n):
        if block < 0 or offset < 0 or block * self.block_size + offset + n > self.size:
            raise ValueError("flash: block %d offset %d length %d is outside the device" % (block, offset, n))

    def readblocks(self, block, buf, offset=0):
        n = len(buf)
        self._check(block, offset, n)
        f = self._f
        f.seek(block * self.block_size + offset)
        got = f.readinto(buf)
        if got != n:
            raise OSError(_EIO, "flash: short read of the image")
        self.bytes_read += n
        return 0

    def _program(self, at, buf):
        # Page by page, each its own write(): a kill can fall between two of them.
        mv = memoryview(buf)
        f = self._f
        f.seek(at)
        i = 0
        n = len(mv)
        ps = self.page_size
        while i < n:
            k = ps - (at + i) % ps  # up to the next page boundary
            if k > n - i:
                k = n - i
            f.write(mv[i : i + k])
            i += k
            if i < n:
                if self.on_page is not None:
                    self.on_page()  # a test's hook: "a kill may land now"
                if self.pause_us:
                    _sleep_us(self.pause_us)
        if self.on_programmed is not None and n > ps:
            self.on_programmed()
        self.bytes_programmed += n

    def _erase(self, block):
        at = block * self.block_size
        f = self._f
        f.seek(at)
        half = self.block_size // 2
        done = 0
        while done < self.block_size:
            f.write(_ERASED)
            done += PAGE_SIZE
            if done == half and self.pause_us:
                _sleep_us(self.pause_us)  # an erase cut in half leaves half a block erased
        self.erases += 1

    def writeblocks(self, block, buf, offset=None):
        n = len(buf)
        if offset is None:
            # The simple interface (FAT): whole blocks, each erased first.
            if n % self.block_size:
                raise ValueError("flash: writeblocks without offset takes whole blocks")
            self._check(block, 0, n)
            for b in range(n // self.block_size):
                if self.faults.check():
                    self.write_errors += 1
                    return -_EIO
                self._erase(block + b)
            offset = 0
        else:
            self._check(block, offset, n)
        if self.faults.check():
            self.write_errors += 1
            return -_EIO
        self._program(block * self.block_size + offset, buf)
        self.programs += 1
        return 0

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.block_count
        if op == 5:  # block size
            return self.block_size
        if op == 6:  # erase a block
            self._check(arg, 0, self.block_size)
            if self.faults.check():
                self.write_errors += 1
                return -_EIO
            self._erase(arg)
            return 0
        # 1 init, 2 deinit, 3 sync: every write() already reached the host's file system
        return 0


# -- mounting (MicroPython: vfs.VfsLfs2) ---------------------------------------------------


def mount(image, mountpoint="/flash", size=None, pause_us=0, repair=True):
    """Mount the LittleFS in `image` at `mountpoint` (a missing image is created with
    `size` bytes and formatted, as a board formats a blank flash on its first boot).
    An image that does not mount (its file system destroyed) is set aside as
    image + ".corrupt" and a fresh one formatted, as MicroPython's boot scripts do on a
    board: the node comes up and says so. Returns (device, report or None)."""
    import vfs

    report = None
    fresh = False
    try:
        open(image, "rb").close()
    except OSError:
        fresh = True
    dev = FileFlash(image, size=size, pause_us=pause_us)
    if fresh:
        vfs.VfsLfs2.mkfs(dev)
    try:
        fs = vfs.VfsLfs2(dev)
        vfs.mount(fs, mountpoint)
    except OSError as e:
        import os

        if not repair:
            dev.close()
            raise
        size = dev.size
        dev.close()
        os.rename(image, image + ".corrupt")
        report = "flash did not mount (%s): set aside as %s.corrupt, formatted afresh" % (e, image)
        dev = FileFlash(image, size=size, pause_us=pause_us)
        vfs.VfsLfs2.mkfs(dev)
        vfs.mount(vfs.VfsLfs2(dev), mountpoint)
    return dev, report


def usage(directory):
    """(total bytes, free bytes) of the file system holding `directory`."""
    import os

    st = os.statvfs(directory)
    free = st[3]
    if free > st[2]:
        free = 0  # LittleFS answers nonsense (a negative count) once it is completely full
    return st[0] * st[2], st[0] * free


FAULT_KINDS = ("eio", "read_only", "fill")
# eio:       every `every`-th program or erase fails (default 3): a worn, failing chip
# read_only: every program and erase fails (a chip locked or worn out)
# fill:      something else on the board (a log, a half-finished update) takes every
#            free byte, and keeps taking what is freed, until the fault ends


class FlashJig:
    """The flash faults of a node over time, like the sensor faults of hal/sim/board:
    a list of {"kind": one of FAULT_KINDS, "at_s": t, "for_s": d (0: until the end),
    "every": k} switched on and off by tick(now_ms)."""

    FILL_NAME = ".fill"

    def __init__(self, dev, root, faults=(), clk=None):
        from hal import clock

        self.clock = clk or clock.current()
        self.dev = dev
        self.root = root.rstrip("/")
        self.faults = []
        for f in faults:
            if type(f) is not dict or f.get("kind") not in FAULT_KINDS:
                raise ValueError("flash fault kind must be one of %s, not %r" % (", ".join(FAULT_KINDS), f))
            self.faults.append([f, "pending"])
        self._t0 = self.clock.ticks_ms()
        self._fill_on = False
        self._next_fill = 0
        self.filled = 0  # bytes the fill holds

    def tick(self, now=None):
        now = self.clock.ticks_ms() if now is None else now
        t_ms = self.clock.ticks_diff(now, self._t0)
        for entry in self.faults:
            on = switch_due(entry, t_ms)
            if on is not None:
                self._switch(entry[0], on)
        if self._fill_on and self.clock.ticks_diff(now, self._next_fill) >= 0:
            self._top_up()
            self._next_fill = self.clock.ticks_add(now, 500)

    def _switch(self, f, on):
        kind = f["kind"]
        print("flash fault %s %s" % (kind, "on" if on else "off"))
        if kind == "eio":
            self.dev.faults.every(f.get("every", 3) if on else 0)
        elif kind == "read_only":
            self.dev.faults.read_only = on
        elif kind == "fill":
            self._fill_on = on
            if on:
                self._top_up()
            else:
                self._release()

    def _top_up(self):
        """Append to the fill file until the flash says it is full."""
        chunk = b"\x00" * 512
        try:
            f = open(self.root + "/" + self.FILL_NAME, "ab")
        except OSError:
            return
        try:
            while True:
                f.write(chunk)
                f.flush()
                self.filled += len(chunk)
        except OSError:
            pass
        finally:
            try:
                f.close()
            except OSError:
                pass

    def _release(self):
        import os

        try:
            os.remove(self.root + "/" + self.FILL_NAME)
        except OSError:
            pass
        self.filled = 0
