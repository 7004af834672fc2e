# The simulated SPI bus (machine.SPI's interface), apart from hal/sim/bus.py so that a node
# without SPI sensors does not load it; `from hal.sim.bus import SimSPI` still works.

from hal.sim.bus import _Bus


class SimSPI(_Bus):
    """machine.SPI over simulated devices selected by their chip-select SimPin (active low).

    One transaction is one chip-select frame (CS low … CS high). Inside a frame the
    bytes written and read are collected and handed to the device when CS rises, so a
    device sees the whole frame; reads during the frame are answered by the device's
    `spi_read` for what was sent so far.
    """

    def __init__(self, clock=None, log=True, baudrate=1000000):
        super().__init__(clock, log)
        self.baudrate = baudrate
        self._selected = None
        self._mosi = bytearray(64)
        self._n = 0

    def attach(self, device, cs):
        cs.watchers.append(self._cs_changed)
        cs.device = device
        return device

    def _cs_changed(self, pin, v):
        if v == 0:
            self.transactions += 1
            self._selected = pin.device
            self._selected.transactions += 1
            self._n = 0
        else:
            dev = self._selected
            self._selected = None
            if dev is not None and not dev.faults.absent:
                dev.spi_end(memoryview(self._mosi)[: self._n])
            if self.log is not None:
                self._record(("frame", pin.id, None, bytes(self._mosi[: self._n])))

    def _shift(self, wbuf, rbuf, fill):
        dev = self._selected
        n = len(rbuf) if rbuf is not None else len(wbuf)
        while self._n + n > len(self._mosi):
            self._mosi.extend(bytes(len(self._mosi)))
        start = self._n
        mosi = self._mosi
        for i in range(n):
            mosi[start + i] = wbuf[i] if wbuf is not None else fill
        self._n = start + n
        if rbuf is None:
            return
        if dev is None or dev.faults.absent:
            for i in range(n):
                rbuf[i] = 0xFF  # nobody drives MISO: the pull-up reads ones
            return
        dev.spi_read(memoryview(mosi)[: start + n], start, rbuf)
        dev.faults.damage(rbuf)

    def write(self, buf):
        self._shift(buf, None, 0)

    def readinto(self, buf, write_byte=0):
        self._shift(None, buf, write_byte)

    def read(self, nbytes, write_byte=0):
        buf = bytearray(nbytes)
        self.readinto(buf, write_byte)
        return bytes(buf)

    def write_readinto(self, wbuf, rbuf):
        self._shift(wbuf, rbuf, 0)
