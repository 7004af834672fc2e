# Board descriptions: which pins carry which bus on each supported board, so that code
# asks for "i2c0" or "uart1" and never carries pin numbers of its own.
#
# Pin choices follow the boards' documented defaults where they have one, and avoid
# pins with a job at boot (ESP32 GPIO 6-11 are the flash, GPIO 0/2/12/15 strapping).

BOARDS = {
    # Espressif ESP32-DevKitC (ESP32-WROOM-32).
    "esp32-devkitc": {
        "backend": "machine",
        "platform": "esp32",  # sys.platform of the MicroPython that runs on it
        "i2c": {
            0: {"scl": 22, "sda": 21, "freq": 400000},  # the Arduino-core default pair
            1: {"scl": 26, "sda": 25, "freq": 100000},  # long cables to a mast-top sensor
        },
        "spi": {
            2: {"sck": 18, "mosi": 23, "miso": 19, "cs": 5, "baudrate": 1000000},  # VSPI
        },
        "uart": {
            # UART0 is the REPL; UART1's default pins are the flash, so both are remapped.
            1: {"tx": 4, "rx": 27, "rxbuf": 512},
            2: {"tx": 17, "rx": 16, "rxbuf": 512},
        },
        "pins": {"led": 2, "pm_power": 33},
    },
    # Raspberry Pi Pico W (RP2040 + CYW43439): GP23-25 and GP29 belong to the radio.
    "pico-w": {
        "backend": "machine",
        "platform": "rp2",
        "i2c": {
            0: {"scl": 5, "sda": 4, "freq": 400000},
            1: {"scl": 7, "sda": 6, "freq": 100000},
        },
        "spi": {
            0: {"sck": 18, "mosi": 19, "miso": 16, "cs": 17, "baudrate": 1000000},
        },
        "uart": {
            0: {"tx": 0, "rx": 1, "rxbuf": 512},
            1: {"tx": 8, "rx": 9, "rxbuf": 512},
        },
        "pins": {"led": "LED", "pm_power": 22},
    },
    # Raspberry Pi gateway: CPython with Adafruit Blinka (hal/blinka.py); the Pi's
    # header has one I2C bus, one SPI bus and the primary UART.
    "pi": {
        "backend": "blinka",
        "platform": "linux",
        "implementation": "cpython",
        "i2c": {1: {}},
        "spi": {0: {"cs": "CE0"}},
        "uart": {0: {"port": "/dev/serial0"}},
        "pins": {"pm_power": "D17"},
    },
    # The simulator: buses and chips are made by hal/sim, driven by a VirtualClock.
    "unix-sim": {
        "backend": "sim",
        "platform": ("linux", "darwin"),  # MicroPython's unix port, or CPython
        "i2c": {0: {}},
        "spi": {0: {"cs": "cs0"}},
        "uart": {1: {}, 2: {}},
        "pins": {"led": "led", "pm_power": "pm_power"},
    },
}

KINDS = ("i2c", "spi", "uart")


def fits(name, platform, implementation=None):
    """None when board `name`'s firmware runs on an interpreter that reports sys.platform
    `platform` (and sys.implementation.name `implementation`); otherwise why not, naming
    both. Deploy asks the board this before it copies anything; the node at boot."""
    desc = board(name)
    want = desc.get("platform")
    want = (want,) if type(want) is str else tuple(want or ())
    impl = desc.get("implementation")
    if platform in want and (impl is None or implementation is None or implementation == impl):
        return None
    found = [b for b in sorted(BOARDS) if b != name and platform in _platforms(b)
             and BOARDS[b].get("implementation", implementation) == implementation]
    return "the config is for board %s (%s), but this board is %s%s%s" % (
        name, "/".join(want) + (" " + impl if impl else ""), platform,
        " " + implementation if implementation else "",
        " (board %s)" % " or ".join(found) if found else "")  # fmt: skip


def _platforms(name):
    p = BOARDS[name].get("platform")
    return (p,) if type(p) is str else tuple(p or ())


def board(name):
    """The description of board `name`; ValueError naming the known boards otherwise."""
    desc = BOARDS.get(name)
    if desc is None:
        raise ValueError("unknown board %r (known: %s)" % (name, ", ".join(sorted(BOARDS))))
    return desc


def parse_bus(name):
    """'i2c0' -> ('i2c', 0), 'uart1' -> ('uart', 1)."""
    for kind in KINDS:
        if name.startswith(kind) and name[len(kind) :].isdigit():
            return kind, int(name[len(kind) :])
    raise ValueError("bus name %r is not i2c<N>, spi<N> or uart<N>" % (name,))


def bus_pins(board_name, bus_name):
    """(kind, index, pin description) of a bus on a board; errors name what exists."""
    desc = board(board_name)
    kind, index = parse_bus(bus_name)
    buses = desc.get(kind, {})
    if index not in buses:
        have = ", ".join("%s%d" % (kind, i) for i in sorted(buses)) or "none"
        raise ValueError("board %s has no %s (its %s buses: %s)" % (board_name, bus_name, kind, have))
    return kind, index, buses[index]
