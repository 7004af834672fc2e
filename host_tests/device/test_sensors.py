# The node's sensor slots on the simulated board: intervals, windows, warm-up, faults
# and sensors that come back. Runs on CPython and inside MicroPython.

from errno import EIO

from firmware.sensors import Sensors, SensorSlot, aggregate, mean, median
from hal.sim.board import SimPlatform
from hal.sim.environment import Environment
from host_tests.device.support import close, message, raises, virtual_clock

BME = {"name": "air", "driver": "bme280", "bus": "i2c0", "address": 0x76}


def _node(specs, faults=(), interval_s=10):
    clk = virtual_clock()
    env = Environment(temperature=18.0, humidity=60.0, pressure=1000.0)
    platform = SimPlatform(specs, env=env, faults=faults)
    sensors = Sensors({"interval_s": interval_s, "sensors": specs}, platform)
    return sensors, platform, env, clk


def _run(sensors, platform, clk, seconds, step_ms=100):
    for _ in range(seconds * 1000 // step_ms):
        now = clk.ticks_ms()
        platform.tick(now)
        sensors.poll(now)
        clk.sleep_ms(step_ms)


def test_median_and_mean():
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5
    assert mean([1, 2, 3, 6]) == 3
    out = aggregate([{"a": 1, "b": None}, {"a": 3, "b": None}], ("a", "b"), "mean")
    assert out == {"a": 2, "b": None}


def test_one_reading_per_interval():
    sensors, platform, env, clk = _node([BME])
    _run(sensors, platform, clk, 10)
    slot = sensors.slots[0]
    assert slot.reads == 1 and slot.state == "ok"
    v = sensors.take()["air"]
    assert close(v["temperature"], 18.0, 0.011) and close(v["pressure"], 1000.0, 0.02)
    assert sensors.take()["air"] == {"temperature": None, "humidity": None, "pressure": None}


def test_window_median_of_n_samples():
    spec = dict(BME, window={"n": 5, "agg": "median"})
    sensors, platform, env, clk = _node([spec])
    for t in (10.0, 30.0, 11.0, 12.0, 13.0):  # one outlier
        env.set(temperature=t)
        _run(sensors, platform, clk, 2)
    assert sensors.slots[0].reads == 5
    assert close(sensors.take()["air"]["temperature"], 12.0, 0.011)


def test_warmup_readings_do_not_count():
    spec = dict(BME, warmup_s=15)
    sensors, platform, env, clk = _node([spec], interval_s=5)
    _run(sensors, platform, clk, 10)
    assert sensors.take()["air"]["temperature"] is None
    assert sensors.slots[0].state == "warmup"
    _run(sensors, platform, clk, 10)
    assert close(sensors.take()["air"]["temperature"], 18.0, 0.011)


def test_absent_at_boot_then_comes_back_without_reboot():
    faults = [{"sensor": "air", "kind": "absent", "at_s": 0, "for_s": 25}]
    sensors, platform, env, clk = _node([BME], faults=faults)
    _run(sensors, platform, clk, 20)
    slot = sensors.slots[0]
    assert slot.state == "absent" and slot.errors >= 2 and "0x76" in slot.last_error
    assert sensors.take()["air"]["temperature"] is None
    _run(sensors, platform, clk, 30)
    assert slot.state == "ok"
    assert close(sensors.take()["air"]["humidity"], 60.0, 0.03)


def test_failing_sensor_gives_null_and_counts_then_resumes():
    faults = [{"sensor": "air", "kind": "eio", "at_s": 15, "for_s": 40}]
    sensors, platform, env, clk = _node([BME], faults=faults)
    _run(sensors, platform, clk, 12)
    assert sensors.take()["air"]["temperature"] is not None
    _run(sensors, platform, clk, 40)
    slot = sensors.slots[0]
    assert sensors.take()["air"] == {"temperature": None, "humidity": None, "pressure": None}
    assert slot.errors >= 3 and slot.reopened >= 1
    _run(sensors, platform, clk, 30)
    assert close(sensors.take()["air"]["temperature"], 18.0, 0.011)
    assert sensors.errors() == {"air": slot.errors}


def test_stuck_busy_and_garbage_faults_on_a_live_slot():
    faults = [
        {"sensor": "air", "kind": "stuck_busy", "at_s": 5, "for_s": 20},
        {"sensor": "air", "kind": "corrupt", "at_s": 40, "for_s": 20},
    ]
    sensors, platform, env, clk = _node([BME], faults=faults)
    _run(sensors, platform, clk, 70)
    slot = sensors.slots[0]
    assert slot.errors >= 4, slot.errors
    _run(sensors, platform, clk, 20)
    assert slot.state == "ok"
    assert close(sensors.take()["air"]["pressure"], 1000.0, 0.02)


def test_bad_option_is_misconfigured_not_retried():
    spec = dict(BME, options={"iir_filter": 3})
    sensors, platform, env, clk = _node([spec])
    _run(sensors, platform, clk, 30)
    slot = sensors.slots[0]
    assert slot.state == "misconfigured" and slot.errors == 1
    assert "iir_filter" in slot.last_error


def test_unknown_driver_and_fault_are_refused():
    clk = virtual_clock()
    e = raises(ValueError, SensorSlot, {"name": "x", "driver": "dht22", "bus": "i2c0"}, None, 60)
    assert "dht22" in message(e)
    raises(ValueError, SimPlatform, [BME], None, [{"sensor": "nope", "kind": "absent"}])
    raises(ValueError, SimPlatform, [BME], None, [{"sensor": "air", "kind": "melt"}])


def test_disabled_sensor_is_skipped_and_next_due():
    sensors, platform, env, clk = _node([BME, dict(BME, name="off", address=0x77, enabled=False)])
    assert [s.name for s in sensors.slots] == ["air"]
    now = clk.ticks_ms()
    assert sensors.next_due_ms(now) == 0
    sensors.poll(now)
    assert sensors.next_due_ms(now) == 10000


def test_pm_sensor_warm_up_is_not_an_error():
    spec = {"name": "pm", "driver": "pms5003", "bus": "uart1", "options": {"power_pin": "pm_power"}}
    sensors, platform, env, clk = _node([spec], interval_s=5)
    _run(sensors, platform, clk, 20)
    slot = sensors.slots[0]
    assert slot.state == "warmup" and slot.errors == 0, (slot.state, slot.last_error)
    assert sensors.take()["pm"] == {"pm1_0": None, "pm2_5": None, "pm10": None}
    _run(sensors, platform, clk, 30)
    assert slot.state == "ok", (slot.state, slot.last_error)
    pm = sensors.take()["pm"]
    assert pm["pm2_5"] is not None and pm["pm10"] >= pm["pm2_5"]


def test_auto_address_finds_the_chip_where_it_answers():
    spec = dict(BME, address=0x77)
    clk = virtual_clock()
    platform = SimPlatform([spec], env=Environment(temperature=18.0))
    auto = dict(spec, address="auto")
    sensors = Sensors({"interval_s": 10, "sensors": [auto]}, platform)
    sensors.poll(clk.ticks_ms())
    slot = sensors.slots[0]
    assert slot.state == "ok", slot.last_error
    assert slot.driver._regs.address == 0x77


def test_pm_humidity_correction_is_published_next_to_the_raw_value():
    from firmware.config import ConfigError, validate

    specs = [
        {"name": "air", "driver": "bme280", "bus": "i2c0", "address": 0x76},
        {"name": "pm", "driver": "pms5003", "bus": "uart1", "options": {"power_pin": "pm_power", "warmup_s": 1},
         "rh_correction": {"humidity_from": "air"}},
    ]
    cfg = validate({"node_id": "n", "board": "unix-sim", "mqtt": {"host": "h"}, "interval_s": 5, "sensors": specs})
    assert cfg["sensors"][1]["rh_correction"] == {"humidity_from": "air", "kappa": 0.3}
    clk = virtual_clock()
    env = Environment(humidity=85.0)
    platform = SimPlatform(cfg["sensors"], env=env)
    sensors = Sensors(cfg, platform)
    _run(sensors, platform, clk, 15)
    pm = sensors.take()["pm"]
    assert pm["pm2_5"] is not None and pm["pm2_5_rh_corrected"] is not None
    assert pm["pm2_5_rh_corrected"] < pm["pm2_5"]  # wet particles weigh more: the dried value is lower
    assert set(pm) == {"pm1_0", "pm2_5", "pm10", "pm1_0_rh_corrected", "pm2_5_rh_corrected", "pm10_rh_corrected"}
    bad = [dict(specs[0]), dict(specs[1], rh_correction={"humidity_from": "pm"})]
    e = raises(ConfigError, validate, {"node_id": "n", "board": "unix-sim", "mqtt": {"host": "h"}, "sensors": bad})
    assert "humidity_from" in message(e)
    bad = [dict(specs[0], rh_correction={"humidity_from": "air"})]
    e = raises(ConfigError, validate, {"node_id": "n", "board": "unix-sim", "mqtt": {"host": "h"}, "sensors": bad})
    assert "particulate" in message(e)
