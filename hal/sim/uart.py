# The simulated UART (machine.UART's interface) and the base of the chip models behind one,
# apart from hal/sim/bus.py so that a node without UART sensors does not load them;
# `from hal.sim.bus import SimUART, SimUARTDevice` still works.

from hal.sim.bus import SimDevice, _Bus


class SimUARTDevice(SimDevice):
    """Base of a UART device model: receives what the host writes, emits bytes over time."""

    baudrate = 9600

    def on_rx(self, data):
        """Bytes the host wrote to the device."""

    def poll(self, out):
        """Append to bytearray `out` what the device sent up to now (self.elapsed_ms())."""


class SimUART(_Bus):
    """machine.UART wired to one simulated device: write(), read(), readinto(), any().

    The receive buffer is bounded like a board's (rxbuf bytes): bytes that arrive while
    it is full are lost, as they are on a real UART.
    """

    def __init__(self, device=None, clock=None, log=True, rxbuf=256, baudrate=9600):
        super().__init__(clock, log)
        self.device = device
        self.baudrate = baudrate
        self.rxbuf = rxbuf
        self._rx = bytearray()
        self._incoming = bytearray()
        self.overruns = 0

    def _pump(self):
        dev = self.device
        if dev is None or dev.faults.absent:
            return
        dev.poll(self._incoming)
        if self._incoming:
            room = self.rxbuf - len(self._rx)
            if len(self._incoming) > room:
                self.overruns += len(self._incoming) - room
                self._rx.extend(self._incoming[:room])
            else:
                self._rx.extend(self._incoming)
            self._incoming = bytearray()

    def any(self):
        self._pump()
        return len(self._rx)

    def read(self, nbytes=None):
        n = self.any() if nbytes is None else nbytes
        buf = bytearray(n)
        got = self.readinto(buf)
        if got is None:
            return None  # machine.UART.read() returns None on timeout with nothing read
        return bytes(buf[:got])

    def readinto(self, buf, nbytes=None):
        self._pump()
        n = len(buf) if nbytes is None else min(nbytes, len(buf))
        n = min(n, len(self._rx))
        if n == 0:
            return None
        for i in range(n):
            buf[i] = self._rx[i]
        self._rx = self._rx[n:]
        self.transactions += 1
        if self.device is not None:
            self.device.faults.damage(memoryview(buf)[:n])
        self._record(("read", None, None, bytes(buf[:n])))
        return n

    def write(self, buf):
        self.transactions += 1
        self._record(("write", None, None, bytes(buf)))
        dev = self.device
        if dev is not None and not dev.faults.absent:
            dev.transactions += 1
            dev.on_rx(bytes(buf))
        return len(buf)

    def flush(self):
        pass
