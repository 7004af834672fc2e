# The simulator's field faults (for check and monitor): a frozen sensor, a board in a brown-out boot
# loop, and the jitter of a street's air that tells a healthy sensor from a frozen one.
# Runs on CPython and inside MicroPython.

from firmware.sensors import Sensors
from hal.sim.board import EXIT_REBOOT, FAULT_KINDS, FrozenAir, JitteryAir, SimPlatform
from hal.sim.environment import Environment, StreetEnvironment
from host_tests.device.support import close, virtual_clock

BME = {"name": "air", "driver": "bme280", "bus": "i2c0", "address": 0x76}
LIGHT = {"name": "light", "driver": "bh1750", "bus": "i2c0"}


def _readings(specs, faults=(), env=None, cycles=12, interval_ms=1000):
    clk = virtual_clock()
    platform = SimPlatform(specs, env=env if env is not None else StreetEnvironment(seed=5), faults=faults)
    sensors = Sensors({"interval_s": interval_ms / 1000, "sensors": specs}, platform)
    out = []
    for _ in range(cycles):
        for _ in range(interval_ms // 100):
            now = clk.ticks_ms()
            platform.tick(now)
            sensors.poll(now)
            clk.sleep_ms(100)
        out.append(sensors.take())
    return out


def test_new_fault_kinds_are_listed():
    assert "frozen" in FAULT_KINDS and "brownout" in FAULT_KINDS
    assert EXIT_REBOOT == 3


def test_street_air_jitters_every_reading():
    rows = _readings([BME, LIGHT])
    for q in ("temperature", "humidity", "pressure"):
        vals = [r["air"][q] for r in rows[1:]]
        same = sum(1 for i in range(1, len(vals)) if vals[i] == vals[i - 1])
        assert same <= 1, (q, vals)
    lux = [r["light"]["illuminance"] for r in rows[1:]]
    assert len(set(lux)) > 5, lux
    # but only a little: a street's temperature does not jump
    temps = [r["air"]["temperature"] for r in rows[1:]]
    assert max(temps) - min(temps) < 0.3


def test_jitter_is_deterministic_and_bounded():
    a = JitteryAir(StreetEnvironment(seed=1), 7)
    b = JitteryAir(StreetEnvironment(seed=1), 7)
    base = StreetEnvironment(seed=1)
    for t in range(0, 100000, 777):
        assert a.sample("temperature", t) == b.sample("temperature", t)
        assert close(a.sample("temperature", t), base.sample("temperature", t), 0.0801)
        assert close(a.sample("pm2_5", t), base.sample("pm2_5", t), 0.041 * base.sample("pm2_5", t))
        n = a.noise(3, t)
        assert -1.0 <= n < 1.0
    assert a.sample("temperature", 0) != a.sample("temperature", 100)


def test_lab_environment_stays_exact():
    rows = _readings([BME], env=Environment(temperature=18.0, humidity=60.0, pressure=1000.0), cycles=3)
    assert close(rows[-1]["air"]["temperature"], 18.0, 0.011)


def test_frozen_sensor_repeats_one_reading_exactly():
    faults = [{"sensor": "air", "kind": "frozen", "at_s": 3}]
    rows = _readings([BME, LIGHT], faults=faults, cycles=14)
    frozen = [r["air"] for r in rows[5:]]
    assert all(v == frozen[0] for v in frozen), frozen
    assert frozen[0]["temperature"] is not None
    before = [r["air"]["humidity"] for r in rows[:3]]
    assert len(set(before)) > 1  # it jittered before it froze
    lux = [r["light"]["illuminance"] for r in rows[5:]]
    assert len(set(lux)) > 3  # the other sensor is not affected


def test_frozen_sensor_thaws_when_the_fault_ends():
    faults = [{"sensor": "air", "kind": "frozen", "at_s": 1, "for_s": 5}]
    rows = _readings([BME], faults=faults, cycles=14)
    late = [r["air"]["humidity"] for r in rows[8:]]
    assert len(set(late)) > 3, late


def test_frozen_air_wrapper():
    f = FrozenAir(StreetEnvironment(seed=2))
    first = f.sample("temperature", 1000)
    assert f.sample("temperature", 9 * 3600000) == first


def test_brownout_resets_the_board():
    clk = virtual_clock()
    platform = SimPlatform([BME], env=StreetEnvironment(seed=1), faults=[{"sensor": "air", "kind": "brownout", "at_s": 2}])
    platform.tick(clk.ticks_ms())
    clk.sleep_ms(1500)
    platform.tick(clk.ticks_ms())  # not yet
    clk.sleep_ms(600)
    try:  # support.raises catches Exception only; SystemExit is a BaseException
        platform.tick(clk.ticks_ms())
    except SystemExit as e:
        assert e.args[0] == EXIT_REBOOT
    else:
        raise AssertionError("brownout did not reset the board")
