"""The air-quality sensor drivers (SHT4x, BH1750, SCD4x, SPS30, PMS5003) against their peers on
the same simulated chips.

All numbers come from one run:
  MicroPython  our drivers, tools/streetnode/bench/device/sensors_micropython.py in the real interpreter
  CPython      our drivers again (the same harness, imported), and the peers from PyPI:
               adafruit_sht4x, adafruit_bh1750, adafruit_scd4x through streetnode.bench.circuitpython's
               CircuitPythonI2C; Sensirion's sensirion_i2c_scd4x / sensirion_i2c_sps30
               through an I2C transceiver over our SimI2C; Pimoroni's pms5003 through a
               pyserial stand-in over our SimUART (its SET/RESET pins: SimPins).
Every driver gets a fresh simulated chip in the same constant air, bus log off, and a
VirtualClock: the peers' time.sleep goes to it, so sleeps cost no real time.
"""

import json
import math

from streetnode.common import mpy
from streetnode.bench.harness import DEVICE, device_script, figure, render, version as _version

SCRIPT = DEVICE / "sensors_micropython.py"
HEAP = "4m"  # MicroPython heap: room for the garbage while the collector is off
ROUNDS = 3  # µs/reading is the best of this many rounds
_SERIAL_POLL_MS = 10  # the pyserial stand-in's look at the UART while it waits

_COLUMNS = (
    ("sensor", "sensor"),
    ("driver", "driver"),
    ("interpreter", "interpreter"),
    ("setup tx", "setup_tx"),
    ("tx/reading", "tx_per_reading"),
    ("heap B/reading", "heap_per_reading"),
    ("µs/reading", "us_per_reading"),
    ("sim ms/reading", "sim_ms_per_reading"),
    ("× tx", "ratio_tx"),
    ("× heap", "ratio_heap"),
    ("× µs", "ratio_us"),
    ("reading", "values"),
)
_TEXT = 3  # the first columns are text (left-aligned)

_UNITS = {
    "SHT4x": "%.2f °C / %.2f %%RH",
    "BH1750": "%.2f lx",
    "SCD4x": "%d ppm / %.2f °C / %.2f %%RH",
    "SPS30": "PM1 %.2f / PM2.5 %.2f / PM10 %.2f µg/m³",
    "PMS5003": "PM1 %d / PM2.5 %d / PM10 %d µg/m³",
}

NOTES = (
    "Same chip model per sensor, constant air (21.53 °C, 45.21 %RH, 412.5 lx, 731 ppm CO2, "
    "PM1/2.5/10 = 6/9/15 µg/m³), bus log off, PMS5003 without line noise.",
    "tx: I2C transactions (START … STOP); for the PMS5003 UART reads (that returned bytes) "
    "and writes. setup tx: from the constructor until the first reading is in, minus one "
    "steady-state reading (start commands, warm-up drains).",
    "tx/reading: one full reading that returns a fresh value, in steady state; before each, "
    "the clock is advanced as the chip needs: SHT4x 0 (a measurement per command), BH1750 "
    "200 ms (a continuous H-resolution-2 cycle), SCD4x 5 s, SPS30 1 s (after 30 s warm-up), "
    "PMS5003 0 (the drivers wait for the next frame, 2.3 s in stable air).",
    "heap B/reading: MicroPython: bytes allocated per reading, gc.mem_alloc() with the "
    "collector off; CPython: the largest tracemalloc peak above the baseline during one "
    "reading. Both include the simulated chip's own allocations (the same for every driver "
    "of a sensor) and our drivers' result dict.",
    "µs/reading: wall time per reading, best of %d rounds, the drivers' work plus the "
    "simulator's (sleeps cost nothing). sim ms/reading: simulated time per reading, waits "
    "included." % ROUNDS,
    "× columns: ratio to our first driver row of the same sensor on the same interpreter "
    "(higher is worse).",
    "Peers' readings: adafruit_sht4x .measurements (its temperature and relative_humidity "
    "properties would measure once each: twice the transactions); adafruit_bh1750 .lux in "
    "its default continuous HIGH mode (= our continuous high2); adafruit_scd4x .CO2, "
    ".temperature, .relative_humidity (each property polls data-ready first); "
    "sensirion_i2c_scd4x read_measurement() (no data-ready poll, like ours); "
    "sensirion_i2c_sps30 read_data_ready_flag() + read_measurement_values_float() (the "
    "same two commands as ours); Pimoroni pms5003 read() in the sensor's active mode, its "
    "input flushed once after the warm-up (else it returns the frames piled up in the UART "
    "buffer first). Ours in passive mode asks for each frame (read command, reply).",
    "Pimoroni's serial port is a stand-in for pyserial whose read(n) waits (in simulated "
    "time, looking every 10 ms as our driver does) until n bytes are there and takes them "
    "in one UART read, like a blocking pyserial read; its polling is in the peer's µs.",
    "The peers do not run on MicroPython (CircuitPython bus API, pyserial/gpiod, "
    "Sensirion's CPython packages): MicroPython rows are ours only.",
)


def _harness():
    """tools/streetnode/bench/device/sensors_micropython.py imported on CPython."""
    return device_script(SCRIPT)


def _best_of(rounds):
    rows = [dict(r) for r in rounds[0]]
    for i, row in enumerate(rows):
        row["us_per_reading"] = min(r[i]["us_per_reading"] for r in rounds)
    return rows


def run_micropython(readings):
    rounds = []
    for _ in range(ROUNDS):
        proc = mpy.run([str(SCRIPT), str(readings)], heapsize=HEAP, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(
                "the MicroPython benchmark failed (exit %d): %s" % (proc.returncode, proc.stderr.strip()[-2000:])
            )
        rounds.append(json.loads(proc.stdout.strip().splitlines()[-1])["rows"])
    return _best_of(rounds)


# -- peers (CPython) ---------------------------------------------------------------------------


class _VirtualTime:
    """Stands in for a peer module's `time`: sleep(s) advances the installed VirtualClock."""

    def sleep(self, seconds):
        from hal import clock

        clock.sleep_ms(int(math.ceil(seconds * 1000 - 1e-9)))

    def monotonic(self):
        from hal import clock

        return clock.ticks_ms() / 1000

    def time(self):
        return self.monotonic()


class _Patched:
    """Set module attributes for the duration of a with block."""

    def __init__(self, *patches):
        self.patches = patches  # (module, name, value)
        self.saved = []

    def __enter__(self):
        for module, name, value in self.patches:
            self.saved.append((module, name, getattr(module, name)))
            setattr(module, name, value)
        return self

    def __exit__(self, *exc):
        for module, name, value in reversed(self.saved):
            setattr(module, name, value)
        self.saved = []
        return False


def _sensirion_channel(i2c, address):
    from sensirion_driver_adapters.i2c_adapter.i2c_channel import I2cChannel
    from sensirion_i2c_driver import CrcCalculator, I2cConnection
    from sensirion_i2c_driver.transceiver_v1 import I2cTransceiverV1

    from hal import clock

    class SimTransceiver(I2cTransceiverV1):
        """sensirion-i2c-driver's transceiver (API v1) over a SimI2C: a write, the read
        delay in simulated time, a read."""

        description = "SimI2C"
        channel_count = None

        def transceive(self, slave_address, tx_data, rx_length, read_delay, timeout):
            try:
                if tx_data is not None:
                    i2c.writeto(slave_address, tx_data)
                if rx_length is None:
                    return self.STATUS_OK, None, b""
                clock.sleep_ms(int(read_delay * 1000 + 0.5))
                buf = bytearray(rx_length)
                i2c.readfrom_into(slave_address, buf)
                return self.STATUS_OK, None, bytes(buf)
            except OSError as e:
                return self.STATUS_NACK, e, None

    crc = CrcCalculator(8, 0x31, 0xFF, 0x00)
    return I2cChannel(I2cConnection(SimTransceiver()), slave_address=address, crc=crc)


class _BlockingSerial:
    """The part of pyserial's Serial that Pimoroni's driver uses, over a SimUART: read(n)
    waits in simulated time (10 ms steps, as our driver polls; up to `timeout` s) until
    n bytes are there and takes them in one UART read."""

    def __init__(self, uart, timeout=4.0):
        self.uart, self.timeout = uart, timeout

    def read(self, size=1):
        from hal import clock

        waited = 0
        while self.uart.any() < size and waited < self.timeout * 1000:
            clock.sleep_ms(_SERIAL_POLL_MS)
            waited += _SERIAL_POLL_MS
        return self.uart.read(min(size, self.uart.any())) or b""

    def write(self, data):
        return self.uart.write(bytes(data))

    def flushInput(self):  # noqa: N802 - pyserial's name
        if self.uart.any():
            self.uart.read()

    reset_input_buffer = flushInput

    def flush(self):
        pass

    def close(self):
        pass


def _peer_rows(h, readings, heap_readings):
    """The peers' rows on CPython, and {peer: why} for those left out."""
    rows, skipped = [], {}
    vt = _VirtualTime()

    def run(key, dist, fn):
        version = _version(dist)
        if version is None:
            skipped[key] = "not installed (pip install %s)" % dist
            return
        try:
            rows.append(_best_of([[fn(version)] for _ in range(ROUNDS)])[0])
        except Exception as e:  # noqa: BLE001 - a peer that fails is reported, not fatal
            skipped[key] = "failed on the simulated chip: %s: %s" % (type(e).__name__, e)

    def sht4x(version):
        import adafruit_sht4x

        from streetnode.bench.circuitpython import CircuitPythonI2C

        with _Patched((adafruit_sht4x, "time", vt)):
            return h.measure(
                "SHT4x",
                "adafruit_sht4x %s" % version,
                lambda i2c: adafruit_sht4x.SHT4x(CircuitPythonI2C(i2c), h.ADDRESS["SHT4x"]),
                lambda s: s.measurements,
                readings,
                heap_readings,
                lambda v: (round(v[0], 2), round(v[1], 2)),
            )

    def bh1750(version):
        import adafruit_bh1750

        from streetnode.bench.circuitpython import CircuitPythonI2C

        with _Patched((adafruit_bh1750, "sleep", vt.sleep)):
            return h.measure(
                "BH1750",
                "adafruit_bh1750 %s" % version,
                lambda i2c: adafruit_bh1750.BH1750(CircuitPythonI2C(i2c), h.ADDRESS["BH1750"]),
                lambda s: s.lux,
                readings,
                heap_readings,
                lambda v: (round(v, 2),),
            )

    def scd4x_adafruit(version):
        import adafruit_scd4x

        from streetnode.bench.circuitpython import CircuitPythonI2C

        def make(i2c):
            s = adafruit_scd4x.SCD4X(CircuitPythonI2C(i2c), h.ADDRESS["SCD4x"])
            s.start_periodic_measurement()
            return s

        with _Patched((adafruit_scd4x, "time", vt)):
            return h.measure(
                "SCD4x",
                "adafruit_scd4x %s" % version,
                make,
                lambda s: (s.CO2, s.temperature, s.relative_humidity),
                readings,
                heap_readings,
                lambda v: (v[0], round(v[1], 2), round(v[2], 2)),
            )

    def scd4x_sensirion(version):
        import sensirion_i2c_driver.connection as connection
        import sensirion_i2c_scd4x.device as scd4x_device

        def make(i2c):
            s = scd4x_device.Scd4xDevice(_sensirion_channel(i2c, h.ADDRESS["SCD4x"]))
            s.stop_periodic_measurement()
            s.start_periodic_measurement()
            return s

        def read(s):
            co2, t, rh = s.read_measurement()
            return co2.value, t.value, rh.value

        with _Patched((connection, "time", vt), (scd4x_device, "time", vt)):
            return h.measure(
                "SCD4x",
                "sensirion_i2c_scd4x %s" % version,
                make,
                read,
                readings,
                heap_readings,
                lambda v: (v[0], round(v[1], 2), round(v[2], 2)),
            )

    def sps30_sensirion(version):
        import sensirion_i2c_driver.connection as connection
        from sensirion_i2c_sps30.commands import OutputFormat
        from sensirion_i2c_sps30.device import Sps30Device

        def make(i2c):
            s = Sps30Device(_sensirion_channel(i2c, h.ADDRESS["SPS30"]))
            s.start_measurement(OutputFormat.OUTPUT_FORMAT_FLOAT)
            return s

        def read(s):
            if not s.read_data_ready_flag():
                raise RuntimeError("no new SPS30 values after 1 s")
            return s.read_measurement_values_float()

        with _Patched((connection, "time", vt)):
            return h.measure(
                "SPS30",
                "sensirion_i2c_sps30 %s" % version,
                make,
                read,
                readings,
                heap_readings,
                lambda v: (round(v[0], 2), round(v[1], 2), round(v[3], 2)),
            )

    def pms5003_pimoroni(version):
        import pms5003

        from hal.sim.bus import SimPin, SimUART
        from hal.sim.environment import Environment
        from hal.sim.pms5003 import SimPMS5003

        pins = {}

        class Lines:
            def __init__(self, pin):
                self.pin = pin

            def set_value(self, offset, value):
                from gpiod.line import Value

                self.pin.value(1 if value == Value.ACTIVE else 0)

        def chip_bus(clk):
            pins["GPIO22"] = SimPin("SET", value=1)
            pins["GPIO27"] = SimPin("RESET", value=1)
            model = SimPMS5003(Environment(**h.ENV), set_pin=pins["GPIO22"], reset_pin=pins["GPIO27"], noise=False)
            uart = SimUART(model, log=False)
            clk.sleep_ms(h.POWER_UP_MS["PMS5003"])
            return uart

        def make(uart):
            serial = _BlockingSerial(uart)
            with _Patched(
                (pms5003.serial, "Serial", lambda device, baudrate, timeout: serial),
                (pms5003.gpiodevice, "get_pin", lambda pin, label, settings: (Lines(pins[pin]), 0)),
            ):
                return pms5003.PMS5003(device="/dev/sim", baudrate=9600)

        def read(s):
            d = s.read()
            # PM10 atmospheric is asked for with size None: size 10 raises ValueError in 1.0.1.
            return d.pm_ug_per_m3(1.0, True), d.pm_ug_per_m3(2.5, True), d.pm_ug_per_m3(None, True)

        with _Patched((pms5003, "time", vt)):
            return h.measure(
                "PMS5003",
                "pms5003 (Pimoroni) %s, active" % version,
                make,
                read,
                readings,
                heap_readings,
                lambda v: v,
                chip_bus=chip_bus,
                # It reads whatever the UART holds: after the warm-up that is 30 s of old
                # frames (as many as the buffer kept). Flush once, as its users must.
                prime=lambda s: s._serial.flushInput(),
            )

    run("adafruit_sht4x", "adafruit-circuitpython-sht4x", sht4x)
    run("adafruit_bh1750", "adafruit-circuitpython-bh1750", bh1750)
    run("adafruit_scd4x", "adafruit-circuitpython-scd4x", scd4x_adafruit)
    run("sensirion_i2c_scd4x", "sensirion-i2c-scd4x", scd4x_sensirion)
    run("sensirion_i2c_sps30", "sensirion-i2c-sps30", sps30_sensirion)
    run("pms5003 (Pimoroni)", "pms5003", pms5003_pimoroni)
    return rows, skipped


def run_cpython(readings):
    h = _harness()
    heap_readings = min(readings, 20)
    ours = _best_of([h.ours(readings, heap_readings) for _ in range(ROUNDS)])
    peers, skipped = _peer_rows(h, readings, heap_readings)
    return ours, peers, skipped


def _ratios(rows):
    base = {}
    for r in rows:
        if r["driver"].startswith("streetnode"):
            base.setdefault((r["sensor"], r["interpreter"]), r)
    for r in rows:
        b = base.get((r["sensor"], r["interpreter"]))
        for key, out in (("tx_per_reading", "ratio_tx"), ("heap_per_reading", "ratio_heap"), ("us_per_reading", "ratio_us")):
            r[out] = r[key] / b[key] if b is not None and b[key] else None
    return rows


def run(readings=200):
    """Every row of the benchmark (dicts, see tools/streetnode/bench/device/sensors_micropython.py), grouped by
    sensor, and {peer: why} for the peers left out."""
    if readings < 1:
        raise ValueError("--readings must be at least 1, not %d" % readings)
    mp_rows = run_micropython(readings)
    cp_ours, cp_peers, skipped = run_cpython(readings)
    all_rows = mp_rows + cp_ours + cp_peers
    order = _harness().SENSORS
    rows = []
    for sensor in order:
        rows.extend(r for r in all_rows if r["sensor"] == sensor)
    return _ratios(rows), skipped


def _cell(key, value, sensor=None):
    if value is None:
        return "n/a"
    if key == "values":
        return _UNITS[sensor] % tuple(value)
    if key in ("sensor", "driver", "interpreter"):
        return value
    if key.startswith("ratio") or key == "us_per_reading":
        return "%.1f" % value
    return figure(value)


def format_table(rows, skipped, readings, markdown=False):
    head = [title for title, _ in _COLUMNS]
    body = [[_cell(key, r.get(key), r["sensor"]) for _, key in _COLUMNS] for r in rows]
    extra = ["left out: %s: %s" % (name, why) for name, why in sorted(skipped.items())]
    title = "Air-quality sensor drivers on the same simulated chips, %d readings each" % readings
    return render(title, head, body, NOTES, extra, markdown, left=lambda i, n: i < _TEXT or i == n - 1)


def main(args):
    rows, skipped = run(args.readings)
    print(format_table(rows, skipped, args.readings, markdown=args.markdown))
    return 0



if __name__ == "__main__":
    import sys

    from streetnode.bench import docs

    sys.exit(docs.run("python -m streetnode.bench.sensors", docs.readings_cli("python -m streetnode.bench.sensors", main, 50)))
