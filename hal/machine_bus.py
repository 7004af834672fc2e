# The boards' own buses: machine.I2C / SPI / UART / Pin built from a board description
# (hal/boards.py). On a board these objects ARE what drivers get: no wrapper, no cost.
# `machine` can be handed in, which is how the host tests check what would be built.

from hal.boards import board, bus_pins


def _machine(machine):
    if machine is not None:
        return machine
    import machine as m  # MicroPython only; the Pi uses hal.blinka, the simulator hal.sim

    return m


def open_bus(board_name, bus_name, machine=None, baudrate=None):
    """A machine.I2C/SPI/UART for `bus_name` ("i2c0", "spi2", "uart1") on the board.
    `baudrate` overrides the UART's (9600 is what the PM sensors speak)."""
    m = _machine(machine)
    kind, index, p = bus_pins(board_name, bus_name)
    Pin = m.Pin
    if kind == "i2c":
        return m.I2C(index, scl=Pin(p["scl"]), sda=Pin(p["sda"]), freq=p["freq"])
    if kind == "spi":
        return m.SPI(
            index,
            baudrate=p.get("baudrate", 1000000),
            polarity=0,
            phase=0,
            sck=Pin(p["sck"]),
            mosi=Pin(p["mosi"]),
            miso=Pin(p["miso"]),
        )
    return m.UART(
        index,
        baudrate=baudrate or 9600,
        tx=Pin(p["tx"]),
        rx=Pin(p["rx"]),
        rxbuf=p.get("rxbuf", 256),
        timeout=0,  # never block the main loop: drivers poll any()
    )


def chip_select(board_name, bus_name, machine=None):
    """The chip-select Pin of an SPI bus, as an output, deselected (high)."""
    m = _machine(machine)
    kind, index, p = bus_pins(board_name, bus_name)
    if kind != "spi":
        raise ValueError("%s is not an SPI bus" % bus_name)
    return m.Pin(p["cs"], m.Pin.OUT, value=1)


def output_pin(board_name, name, machine=None, value=0):
    """A named output pin of the board ("led", "pm_power")."""
    m = _machine(machine)
    pins = board(board_name).get("pins", {})
    if name not in pins:
        raise ValueError("board %s has no pin named %r (it has: %s)" % (board_name, name, ", ".join(sorted(pins))))
    return m.Pin(pins[name], m.Pin.OUT, value=value)


class MachinePlatform:
    """What the node asks a board for, by name: buses opened once and shared, pins."""

    def __init__(self, board_name, machine=None):
        board(board_name)  # fail early on an unknown board
        self.board = board_name
        self.machine = machine
        self._buses = {}
        self._pins = {}

    def bus(self, name, kind=None, baudrate=None):
        if name not in self._buses:
            self._buses[name] = open_bus(self.board, name, self.machine, baudrate)
        return self._buses[name]

    def pin(self, name):
        if name not in self._pins:
            self._pins[name] = output_pin(self.board, name, self.machine)
        return self._pins[name]

    def watchdog(self, timeout_ms):
        """The hardware watchdog (machine.WDT): once started it cannot be stopped, and the
        board resets unless feed() comes within timeout_ms."""
        return _machine(self.machine).WDT(timeout=timeout_ms)

    def chip_select(self, bus_name):
        key = "cs-" + bus_name
        if key not in self._pins:
            self._pins[key] = chip_select(self.board, bus_name, self.machine)
        return self._pins[key]
