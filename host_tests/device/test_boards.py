# Board descriptions and the machine backend, with a recording stand-in for `machine`
# (the unix port has no I2C/SPI/UART): what would be built on an ESP32 or a Pico W.

from hal import machine_bus
from hal.boards import BOARDS, board, bus_pins, parse_bus
from host_tests.device.support import message, raises


class _Recorder:
    """A `machine` module that records constructor calls."""

    def __init__(self):
        self.calls = []
        rec = self

        class Pin:
            OUT = 1
            IN = 0

            def __init__(self, pin_id, mode=None, value=None):
                self.id = pin_id
                rec.calls.append(("Pin", pin_id, mode, value))

        self.Pin = Pin

    def _bus(self, kind):
        rec = self

        def make(index=None, **kwargs):
            pins = {k: (v.id if hasattr(v, "id") else v) for k, v in kwargs.items()}
            rec.calls.append((kind, index, pins))
            return (kind, index)

        return make

    def __getattr__(self, name):
        if name in ("I2C", "SPI", "UART", "WDT"):
            return self._bus(name)
        raise AttributeError(name)


def test_parse_bus_names():
    assert parse_bus("i2c0") == ("i2c", 0)
    assert parse_bus("uart12") == ("uart", 12)
    e = raises(ValueError, parse_bus, "i2c")
    assert "i2c" in message(e)
    raises(ValueError, parse_bus, "can0")


def test_unknown_board_and_bus_are_named():
    e = raises(ValueError, board, "esp8266")
    assert "esp8266" in message(e) and "pico-w" in message(e)
    e = raises(ValueError, bus_pins, "pico-w", "uart5")
    assert "uart5" in message(e) and "uart0, uart1" in message(e)


def test_esp32_i2c_built_from_the_description():
    m = _Recorder()
    bus = machine_bus.open_bus("esp32-devkitc", "i2c0", machine=m)
    assert bus == ("I2C", 0)
    assert ("I2C", 0, {"scl": 22, "sda": 21, "freq": 400000}) in m.calls


def test_pico_uart_and_spi_built_from_the_description():
    m = _Recorder()
    machine_bus.open_bus("pico-w", "uart1", machine=m)
    assert m.calls[-1] == ("UART", 1, {"baudrate": 9600, "tx": 8, "rx": 9, "rxbuf": 512, "timeout": 0})
    machine_bus.open_bus("pico-w", "spi0", machine=m)
    assert m.calls[-1][2]["sck"] == 18 and m.calls[-1][2]["miso"] == 16
    machine_bus.chip_select("pico-w", "spi0", machine=m)
    assert m.calls[-1] == ("Pin", 17, 1, 1)
    raises(ValueError, machine_bus.chip_select, "pico-w", "i2c0", m)


def test_named_output_pins():
    m = _Recorder()
    machine_bus.output_pin("pico-w", "led", machine=m)
    assert m.calls[-1] == ("Pin", "LED", 1, 0)
    e = raises(ValueError, machine_bus.output_pin, "esp32-devkitc", "buzzer", m)
    assert "pm_power" in message(e)


def test_no_two_buses_of_a_board_share_a_pin():
    for name in BOARDS:
        desc = BOARDS[name]
        used = {}
        for kind in ("i2c", "spi", "uart"):
            for index in desc.get(kind, {}):
                for role, pin in desc[kind][index].items():
                    if role in ("freq", "baudrate", "rxbuf", "port"):
                        continue
                    where = "%s%d.%s" % (kind, index, role)
                    assert pin not in used, "%s: pin %r used by %s and %s" % (name, pin, used.get(pin), where)
                    used[pin] = where
        for role in desc.get("pins", {}):
            pin = desc["pins"][role]
            assert pin not in used, "%s: pin %r used by %s and pins.%s" % (name, pin, used.get(pin), role)
            used[pin] = role


def test_esp32_avoids_flash_and_strapping_pins():
    forbidden = (0, 6, 7, 8, 9, 10, 11, 12, 15)
    desc = BOARDS["esp32-devkitc"]
    for kind in ("i2c", "spi", "uart"):
        for index in desc[kind]:
            for role, pin in desc[kind][index].items():
                if role in ("sck", "mosi", "miso", "cs", "scl", "sda", "tx", "rx"):
                    assert pin not in forbidden, (kind, index, role, pin)


def test_machine_platform_opens_each_bus_once():
    m = _Recorder()
    p = machine_bus.MachinePlatform("esp32-devkitc", machine=m)
    assert p.bus("i2c0") is p.bus("i2c0")
    assert len([c for c in m.calls if c[0] == "I2C"]) == 1
    assert p.pin("led") is p.pin("led")
    p.chip_select("spi2")
    assert m.calls[-1] == ("Pin", 5, 1, 1)
    raises(ValueError, machine_bus.MachinePlatform, "arduino-uno")


def test_machine_platform_starts_the_hardware_watchdog():
    m = _Recorder()
    machine_bus.MachinePlatform("pico-w", machine=m).watchdog(8000)
    assert m.calls[-1] == ("WDT", None, {"timeout": 8000})
