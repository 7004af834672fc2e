# SDS011 driver and model: runs on CPython (pytest) and inside MicroPython
# (host_tests/test_on_micropython.py). What it shares with the PMS5003 through their base
# (drivers/pm_uart.py) is checked by host_tests/device/pm_uart_checks.py, registered below.

from errno import EAGAIN, ETIMEDOUT

from drivers.pm_uart import BAD, SKIP
from drivers.sds011 import SDS011
from drivers.sds011 import frames as fr
from hal.sim.bus import SimUART
from hal.sim.environment import Environment
from hal.sim.sds011 import SimSDS011, encode_frame
from host_tests.device import pm_uart_checks
from host_tests.device.support import message, raises, virtual_clock


def _hex(s):
    return bytes(int(x, 16) for x in s.split())


# The protocol's own examples (Control Protocol V1.3): a sensor with ID 0xA160.
SLEEP_CMD = _hex("AA B4 06 01 00 00 00 00 00 00 00 00 00 00 00 FF FF 05 AB")
WORK_CMD = _hex("AA B4 06 01 01 00 00 00 00 00 00 00 00 00 00 FF FF 06 AB")
QUERY_CMD = _hex("AA B4 04 00 00 00 00 00 00 00 00 00 00 00 00 FF FF 02 AB")
SLEEP_REPLY = _hex("AA C5 06 01 00 00 A1 60 08 AB")
DATA_EXAMPLE = _hex("AA C0 D4 04 3A 0A A1 60 1D AB")  # PM2.5 123.6, PM10 261.8


def _pm2_5_tenths(win, length):
    return fr.pm_tenths(win)[0] if win[1] == fr.DATA else None


def _parse(stream, chunk=3, device_id=None):
    return pm_uart_checks.parse(fr.Parser, _pm2_5_tenths, stream, chunk, device_id=device_id)


def _data(pm25_tenths, pm10_tenths, device_id=0xA160):
    a, b = pm25_tenths, pm10_tenths
    return encode_frame(0xC0, (a, a >> 8, b, b >> 8, device_id >> 8, device_id))


SDS = pm_uart_checks.Chip(
    name="SDS011",
    driver=SDS011,
    model=SimSDS011,
    polled_mode="query",
    polled=lambda model: model.query_mode,
    request=QUERY_CMD,
    frame_len=10,
    active_interval_ms=1000,
    air={"pm2_5": 8.3, "pm10": 12.1},
    reading={"pm1_0": None, "pm2_5": 8.3, "pm10": 12.1},
    noisy={"pm2_5": (7.9, 8.6), "pm10": (11.7, 12.5)},
    garbage_bytes=25,
    boot_ms=1000,
    # the data frame for a query; for the set-up commands (report mode 2, sleep/work 6,
    # firmware 7, working period 8) the reply that echoes them
    answers=dict([(4, _data(83, 121))] + [(cmd, encode_frame(0xC5, (cmd, 1, val, 0, 0xA1, 0x60)))
                                           for cmd, val in ((2, 1), (6, 1), (7, 15), (8, 0))]),
)
pm_uart_checks.register(globals(), SDS)


def _setup(**kwargs):
    return pm_uart_checks.setup(SDS, **kwargs)


# -- frames: the protocol's examples ---------------------------------------------------------


def test_command_frames_match_the_protocol_examples():
    assert fr.command(fr.CMD_SLEEP_WORK, fr.OP_SET, 0) == SLEEP_CMD
    assert fr.command(fr.CMD_SLEEP_WORK, fr.OP_SET, 1) == WORK_CMD
    assert fr.command(fr.CMD_QUERY) == QUERY_CMD
    # Reporting mode "query" set: 02+01+01+FF+FF = 0x202; working period 1 min: 0x208.
    assert fr.command(fr.CMD_REPORT_MODE, 1, 1)[17] == 0x02
    assert fr.command(fr.CMD_WORKING_PERIOD, 1, 1)[17] == 0x08
    # Addressed to one sensor instead of all: A1 60 replace FF FF.
    assert fr.command(fr.CMD_QUERY, device_id=0xA160)[15:] == _hex("A1 60 05 AB")


def test_data_and_reply_examples_decode():
    assert fr.check(bytearray(DATA_EXAMPLE), 10) == 10
    assert fr.pm_tenths(DATA_EXAMPLE) == (1236, 2618)
    assert fr.frame_id(DATA_EXAMPLE) == 0xA160
    p = fr.Parser()
    p.feed(SLEEP_REPLY, 10)
    assert (p.replies, p.reply_cmd, p.reply_val, p.device_id) == (1, 6, 0, 0xA160)
    p.feed(DATA_EXAMPLE, 10)
    assert p.frames == 1 and bytes(p.data) == DATA_EXAMPLE
    assert _data(1236, 2618) == DATA_EXAMPLE  # the model encodes the same bytes


def test_check_grades_prefixes_tails_and_sums():
    assert fr.check(bytearray(b"\xab"), 1) == SKIP
    assert fr.check(bytearray(b"\xaa\xb4"), 2) == SKIP  # a command echoed back is no data
    assert [fr.check(bytearray(DATA_EXAMPLE), k) for k in (1, 2, 9)] == [0, 0, 0]
    f = bytearray(DATA_EXAMPLE)
    f[9] = 0xAA
    assert fr.check(f, 10) == BAD
    f = bytearray(DATA_EXAMPLE)
    f[3] ^= 0x01
    assert fr.check(f, 10) == BAD
    assert fr.check(bytearray(DATA_EXAMPLE), 10, 0xA160) == 10
    assert fr.check(bytearray(DATA_EXAMPLE), 10, 0x1234) == BAD  # another sensor's ID


def test_stream_mid_frame_garbage_dropped_bytes_and_bad_sums():
    a, b, c, d = _data(100, 200), _data(110, 210), _data(120, 220), _data(130, 230)
    bad = bytearray(c)
    bad[2] ^= 0x40
    dropped = b[:4] + b[5:]
    stream = a[4:] + b"\xaa\x00\xaa\xc0\x01" + a + dropped + bytes(bad) + d + b"\xaa\xc0"
    for chunk in (1, 3, 10, 1000):
        p, seen = _parse(stream, chunk)
        assert seen == [100, 130], (chunk, seen)
        assert p.bad >= 2 and p.n == 2


def test_false_start_does_not_hide_the_real_frame():
    frame = _data(83, 121)
    p, seen = _parse(b"\xaa\xc0\x01\x02" + frame, 100)
    assert seen == [83] and p.bad == 1


def test_frames_with_another_device_id_are_refused():
    p, seen = _parse(_data(1, 2, 0x1111) + _data(3, 4), 10, device_id=0xA160)
    assert seen == [3] and p.bad == 1


# -- reading the simulated sensor ---------------------------------------------------------


def test_set_up_reads_id_and_firmware_and_spares_the_flash():
    sensor, chip, uart, env, clk, pin = _setup()
    assert sensor.device_id == 0xA160 and sensor.firmware == (2015, 7, 10)
    assert chip.query_mode and chip.flash_writes == 1  # active (factory) -> query
    SDS011(uart)
    assert chip.flash_writes == 1  # already in query mode: nothing written again
    sensor.set_working_period(0)
    assert chip.flash_writes == 1


def test_values_follow_the_air():
    sensor, chip, uart, env, clk, pin = _setup()
    for pm25, pm10 in ((0.0, 0.0), (35.4, 60.2), (999.9, 999.9)):
        env.set(pm2_5=pm25, pm10=pm10)
        assert sensor.read() == {"pm1_0": None, "pm2_5": pm25, "pm10": pm10}
    assert sensor.raw() == (9999, 9999)


def test_working_period_reports_once_per_period():
    sensor, chip, uart, env, clk, pin = _setup(mode="active", working_period=1)
    assert chip.working_period == 1 and sensor.warmup_left_ms() == 0
    uart.read()
    sent = chip.frames_sent
    clk.sleep_ms(600000)
    uart.read()
    assert chip.frames_sent - sent == 10
    assert [b - a for a, b in zip(chip.recent[-4:], chip.recent[-3:])] == [60000] * 3
    assert chip.fan_on(chip._period_start + 10000) and not chip.fan_on(chip._period_start + 40000)


def test_working_period_read_gives_the_newest_report_or_eagain():
    sensor, chip, uart, env, clk, pin = _setup(mode="active", working_period=1, warm=False)
    e = raises(EAGAIN, sensor.read)
    assert "working period" in message(e)
    clk.sleep_ms(31000)
    assert sensor.read()["pm10"] == 12.1
    raises(EAGAIN, sensor.read)  # the same report is not returned twice
    env.set(pm10=20.0)
    clk.sleep_ms(60000)
    assert sensor.read()["pm10"] == 20.0


def test_working_period_without_reports_is_a_fault():
    sensor, chip, uart, env, clk, pin = _setup(mode="active", working_period=1, warm=False)
    clk.sleep_ms(31000)
    sensor.read()
    chip.faults.hang()
    clk.sleep_ms(130000)
    e = raises(ETIMEDOUT, sensor.read)
    assert "no report for" in message(e)


def test_options_are_validated():
    sensor, chip, uart, env, clk, pin = _setup()
    e = raises(ValueError, SDS011, uart, "passive")
    assert "passive" in message(e)
    e = raises(ValueError, SDS011, uart, "query", 31)
    assert "31" in message(e)
    raises(ValueError, sensor.set_working_period, -1)
    raises(ValueError, sensor.set_mode, "both")


# -- warm-up and sleep --------------------------------------------------------------------


def test_asleep_the_model_hears_only_work():
    sensor, chip, uart, env, clk, pin = _setup()
    sensor.sleep()
    uart.write(QUERY_CMD)
    uart.write(fr.command(fr.CMD_FIRMWARE))
    clk.sleep_ms(100)
    assert uart.any() == 0
    uart.write(WORK_CMD)
    clk.sleep_ms(100)
    assert not chip.sleeping and uart.read()[:3] == _hex("AA C5 06")


def test_a_sensor_asleep_at_start_up_is_woken():
    clk = virtual_clock()
    chip = SimSDS011(Environment(), noise=False)
    uart = SimUART(chip)
    clk.sleep_ms(1000)
    uart.write(SLEEP_CMD)
    clk.sleep_ms(100)
    assert chip.sleeping
    SDS011(uart)
    assert not chip.sleeping and chip.query_mode


def test_settings_survive_a_power_cycle_and_sleep_does_not():
    sensor, chip, uart, env, clk, pin = _setup(power=True)
    sensor.sleep()
    pin.off()
    pin.on()
    assert not chip.sleeping and chip.query_mode

