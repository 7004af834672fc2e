"""Differential tests: Adafruit's CircuitPython drivers (adafruit-circuitpython-sht4x,
adafruit-circuitpython-bh1750, from PyPI) and ours read the same simulated chips, through
the CircuitPython bus adapter streetnode.bench.circuitpython.CircuitPythonI2C, and must agree.

The peers wait with time.sleep; here their module's sleep advances the VirtualClock
instead (the simulated chips live in simulated time), so nothing waits for real and
the peers still wait exactly what they ask for: a peer that waited too little would
get a NACK from the simulated SHT4x, as from a real one.

Tolerances: the SHT4x peer computes the same float formula from the same 16-bit words,
so the two agree to our rounding (0.0005). The BH1750 peer computes raw / 1.2 (halved
in its HIGH = H-resolution mode 2) on the same count: equal to our rounding (0.005 lx).
Both are then within the chip's resolution of the simulated air.
"""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.bh1750 import BH1750
from drivers.sht4x import SHT4x
from hal import clock
from streetnode.bench.circuitpython import CircuitPythonI2C
from hal.sim.bh1750 import SimBH1750
from hal.sim.bus import SimI2C
from hal.sim.environment import Environment
from hal.sim.sht4x import SimSHT4x

import adafruit_bh1750  # noqa: E402 - peers pinned in the test extra: missing, an import error
import adafruit_sht4x  # noqa: E402


class _VirtualTime:
    """Stands in for the `time` module inside a peer: sleep(s) advances the VirtualClock."""

    def __init__(self, clk):
        self.clk = clk
        self.slept_ms = []

    def sleep(self, seconds):
        ms = int(math.ceil(seconds * 1000 - 1e-9))
        self.slept_ms.append(ms)
        self.clk.sleep_ms(ms)

    def monotonic(self):
        return self.clk.now_ms / 1000


@pytest.fixture
def sim(monkeypatch):
    clk = clock.install(clock.VirtualClock())
    vt = _VirtualTime(clk)
    monkeypatch.setattr(adafruit_sht4x, "time", vt)
    monkeypatch.setattr(adafruit_bh1750, "sleep", vt.sleep)
    env = Environment(temperature=21.53, humidity=45.21, illuminance=412.5)
    i2c = SimI2C()
    yield clk, vt, env, i2c
    clock.install(None)


# -- SHT4x -----------------------------------------------------------------------------


def test_sht4x_peer_and_ours_agree_on_every_precision(sim):
    clk, vt, env, i2c = sim
    chip = i2c.attach(SimSHT4x(env), 0x44)
    clk.sleep_ms(2)
    peer = adafruit_sht4x.SHT4x(CircuitPythonI2C(i2c))
    ours = SHT4x(i2c)
    assert peer.serial_number == ours.serial_number == chip.serial
    modes = {
        "high": adafruit_sht4x.Mode.NOHEAT_HIGHPRECISION,
        "medium": adafruit_sht4x.Mode.NOHEAT_MEDPRECISION,
        "low": adafruit_sht4x.Mode.NOHEAT_LOWPRECISION,
    }
    for t, h in ((21.53, 45.21), (-30.0, 95.0), (60.0, 3.0), (0.0, 100.0), (-40.0, 0.0)):
        env.set(temperature=t, humidity=h)
        for precision, mode in modes.items():
            peer.mode = mode
            ours.configure(precision)
            pt, ph = peer.measurements
            v = ours.read()
            assert abs(v["temperature"] - pt) <= 0.0005, (precision, v, pt)
            assert abs(v["humidity"] - ph) <= 0.0005, (precision, v, ph)
            assert abs(v["temperature"] - t) <= 0.003 and abs(v["humidity"] - h) <= 0.002, (t, h, v)


def test_sht4x_transactions_ours_two_peer_two_too(sim):
    clk, vt, env, i2c = sim
    i2c.attach(SimSHT4x(env), 0x44)
    clk.sleep_ms(2)
    peer = adafruit_sht4x.SHT4x(CircuitPythonI2C(i2c))
    ours = SHT4x(i2c)
    i2c.clear_log()
    peer.measurements
    assert i2c.transactions == 2
    i2c.clear_log()
    ours.read()
    assert i2c.transactions == 2
    # The peer reads twice for temperature + relative_humidity (a measurement each).
    i2c.clear_log()
    peer.temperature, peer.relative_humidity
    assert i2c.transactions == 4


def test_sht4x_heater_peer_and_ours_see_the_same_warming(sim):
    clk, vt, env, i2c = sim
    chip_a = i2c.attach(SimSHT4x(env), 0x44)
    chip_b = i2c.attach(SimSHT4x(env), 0x45)
    clk.sleep_ms(2)
    peer = adafruit_sht4x.SHT4x(CircuitPythonI2C(i2c), 0x44)
    ours = SHT4x(i2c, 0x45)
    peer.mode = adafruit_sht4x.Mode.LOWHEAT_100MS
    pt, ph = peer.measurements
    assert vt.slept_ms[-1] == 110
    clk.sleep_ms(20000)  # both chips cool down; the duty-cycle lock has passed
    hot = ours.heat(20, 100)
    # Same pulse on identical chips: the chip measures at the end of the pulse, so the
    # two readings agree although the peer waits 110 ms and we wait 119 ms.
    assert abs(hot["temperature"] - pt) <= 0.0005 and abs(hot["humidity"] - ph) <= 0.0005, (hot, pt, ph)
    assert pt > 21.6 and ph < 45.0  # warmed by the heater
    assert chip_a.commands[-1] == chip_b.commands[-1] == 0x15


def test_sht4x_peer_gets_crc_error_where_ours_gets_eio(sim):
    clk, vt, env, i2c = sim
    chip = i2c.attach(SimSHT4x(env), 0x44)
    clk.sleep_ms(2)
    peer = adafruit_sht4x.SHT4x(CircuitPythonI2C(i2c))
    ours = SHT4x(i2c)
    chip.faults.corrupt(1, "flip")
    with pytest.raises(RuntimeError):
        peer.measurements
    chip.faults.corrupt(1, "flip")
    with pytest.raises(OSError) as e:
        ours.read()
    assert e.value.args[0] == 5 and "CRC" in e.value.args[1]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(t=st.floats(-40, 125), h=st.floats(0, 100))
def test_sht4x_property_peer_and_ours_agree(t, h):
    clk = clock.install(clock.VirtualClock())
    vt = _VirtualTime(clk)
    saved = adafruit_sht4x.time
    adafruit_sht4x.time = vt
    try:
        env = Environment(temperature=t, humidity=h)
        i2c = SimI2C(log=False)
        i2c.attach(SimSHT4x(env, log=False), 0x44)
        clk.sleep_ms(2)
        pt, ph = adafruit_sht4x.SHT4x(CircuitPythonI2C(i2c)).measurements
        v = SHT4x(i2c).read()
        assert abs(v["temperature"] - pt) <= 0.0005 and abs(v["humidity"] - ph) <= 0.0005
    finally:
        adafruit_sht4x.time = saved
        clock.install(None)


# -- BH1750 ------------------------------------------------------------------------------


def test_bh1750_peer_and_ours_agree_in_continuous_h_resolution_mode2(sim):
    # The peer's only set-up: continuous mode, its HIGH resolution (= H-resolution mode 2).
    clk, vt, env, i2c = sim
    chip = i2c.attach(SimBH1750(env), 0x23)
    peer = adafruit_bh1750.BH1750(CircuitPythonI2C(i2c))
    assert chip.state == "continuous" and chip.resolution == "high2"
    ours = BH1750(i2c, 0x23, mode="continuous", resolution="high2")
    for lux in (412.5, 0.0, 0.7, 3.0, 1000.0, 27306.0, 50000.0):
        env.set(illuminance=lux)
        clk.sleep_ms(200)  # a new measurement cycle for both
        p = peer.lux
        v = ours.read()["illuminance"]
        assert abs(v - p) <= 0.005, (lux, v, p)
        expected = min(lux, 65535 / 2.4)
        assert abs(v - expected) <= 0.5, (lux, v)


def test_bh1750_peer_and_ours_agree_in_every_resolution(sim):
    clk, vt, env, i2c = sim
    i2c.attach(SimBH1750(env), 0x23)
    i2c.attach(SimBH1750(env), 0x5C)
    peer = adafruit_bh1750.BH1750(CircuitPythonI2C(i2c), 0x23)
    resolutions = {
        "low": adafruit_bh1750.Resolution.LOW,
        "high": adafruit_bh1750.Resolution.MID,
        "high2": adafruit_bh1750.Resolution.HIGH,
    }
    for name, code in resolutions.items():
        peer.resolution = code
        ours = BH1750(i2c, 0x5C, mode="continuous", resolution=name)
        for lux in (412.5, 5.0, 20000.0):
            env.set(illuminance=lux)
            clk.sleep_ms(200)
            p = peer.lux
            v = ours.read()["illuminance"]
            assert abs(v - p) <= 0.005, (name, lux, v, p)
            step = {"low": 4.0, "high": 1.0, "high2": 0.5}[name]
            assert abs(v - lux) <= step, (name, lux, v)


def test_bh1750_peer_one_shot_and_ours_one_time(sim):
    clk, vt, env, i2c = sim
    chip = i2c.attach(SimBH1750(env), 0x23)
    peer = adafruit_bh1750.BH1750(CircuitPythonI2C(i2c))
    peer.mode = adafruit_bh1750.Mode.ONE_SHOT  # its setter writes 0x21 and sleeps 180 ms
    p = peer.lux
    assert chip.state == "down"  # one-time mode powered the chip down
    ours = BH1750(i2c)
    ours.configure("one_time", "high2")
    assert abs(ours.read()["illuminance"] - p) <= 0.005
    assert chip.state == "down"
