# PMS5003 driver and model: runs on CPython (pytest) and inside MicroPython
# (host_tests/test_on_micropython.py). What it shares with the SDS011 through their base
# (drivers/pm_uart.py) is checked by host_tests/device/pm_uart_checks.py, registered below.

from errno import EAGAIN, ETIMEDOUT

from drivers.pm_uart import BAD, SKIP
from drivers.pms5003 import PMS5003
from drivers.pms5003 import frames as fr
from hal.sim.bus import SimPin, SimUART
from hal.sim.environment import Environment
from hal.sim.pms5003 import SimPMS5003, encode_data, words_for
from host_tests.device import pm_uart_checks
from host_tests.device.support import message, raises, virtual_clock

# A data frame written out by hand from the data manual's table (appendix I):
# CF=1 PM1.0/2.5/10 = 5/8/12, atmospheric 5/8/12, counts 920 276 61 4 2 1, reserved 0.
# Check code = 0x42+0x4D+0x00+0x1C + 5+8+12+5+8+12 + 0x03+0x98 + 0x01+0x14 + 0x3D + 4+2+1
#            = 171 + 50 + 155 + 21 + 61 + 7 = 465 = 0x01D1.
EXAMPLE = bytes(
    (0x42, 0x4D, 0x00, 0x1C, 0x00, 0x05, 0x00, 0x08, 0x00, 0x0C, 0x00, 0x05, 0x00, 0x08, 0x00, 0x0C,
     0x03, 0x98, 0x01, 0x14, 0x00, 0x3D, 0x00, 0x04, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x01, 0xD1)
)
# The sensor's echo of "passive mode" (E1 00): 0x42+0x4D+0x04+0xE1 = 0x0174.
PASSIVE_REPLY = bytes((0x42, 0x4D, 0x00, 0x04, 0xE1, 0x00, 0x01, 0x74))


def _frame(pm1, pm25, pm10):
    return encode_data(words_for(pm1, pm25, pm10))


def _pm2_5(win, length):
    return fr.word(win, fr.PM2_5_ATM) if length == fr.DATA_FRAME else None


def _parse(stream, chunk=7):
    return pm_uart_checks.parse(fr.Parser, _pm2_5, stream, chunk)


PMS = pm_uart_checks.Chip(
    name="PMS5003",
    driver=PMS5003,
    model=SimPMS5003,
    polled_mode="passive",
    polled=lambda model: model.mode == "passive",
    request=fr.command(fr.CMD_READ, 0),
    frame_len=32,
    active_interval_ms=2300,
    air={"pm1_0": 5.0, "pm2_5": 8.0, "pm10": 12.0},
    reading={"pm1_0": 5, "pm2_5": 8, "pm10": 12},
    noisy={"pm1_0": (4, 6), "pm2_5": (7, 9), "pm10": (11, 13)},
    garbage_bytes=40,
    boot_ms=10000,
    answers={fr.CMD_READ: _frame(5, 8, 12), fr.CMD_MODE: PASSIVE_REPLY},
)
pm_uart_checks.register(globals(), PMS)


def _setup(**kwargs):
    return pm_uart_checks.setup(PMS, **kwargs)


# -- frames: datasheet layout, pure functions -----------------------------------------


def test_command_frames_have_the_datasheet_checksums():
    assert fr.command(fr.CMD_READ, 0) == bytes((0x42, 0x4D, 0xE2, 0x00, 0x00, 0x01, 0x71))
    assert fr.command(fr.CMD_MODE, 0) == bytes((0x42, 0x4D, 0xE1, 0x00, 0x00, 0x01, 0x70))
    assert fr.command(fr.CMD_MODE, 1) == bytes((0x42, 0x4D, 0xE1, 0x00, 0x01, 0x01, 0x71))
    assert fr.command(fr.CMD_SLEEP, 0) == bytes((0x42, 0x4D, 0xE4, 0x00, 0x00, 0x01, 0x73))
    assert fr.command(fr.CMD_SLEEP, 1) == bytes((0x42, 0x4D, 0xE4, 0x00, 0x01, 0x01, 0x74))


def test_example_frame_decodes_word_by_word():
    assert fr.checksum(EXAMPLE, 30) == 0x01D1
    assert fr.check(bytearray(EXAMPLE), 32) == 32
    words = [fr.word(EXAMPLE, i) for i in range(13)]
    assert words == [5, 8, 12, 5, 8, 12, 920, 276, 61, 4, 2, 1, 0]
    assert _frame(5, 8, 12) == EXAMPLE  # the model encodes the same bytes


def test_reply_frame_is_recognised():
    p = fr.Parser()
    p.feed(PASSIVE_REPLY, 8)
    assert (p.replies, p.reply_cmd, p.reply_val, p.frames) == (1, 0xE1, 0, 0)


def test_check_grades_prefixes_and_whole_frames():
    win = bytearray(EXAMPLE)
    assert [fr.check(win, k) for k in (1, 2, 3, 4, 31)] == [0, 0, 0, 0, 0]
    assert fr.check(bytearray(b"\x41"), 1) == SKIP
    assert fr.check(bytearray(b"\x42\x42"), 2) == SKIP
    assert fr.check(bytearray(b"\x42\x4d\x00\x1d"), 4) == SKIP  # length 29: no such frame
    bad = bytearray(EXAMPLE)
    bad[31] ^= 1
    assert fr.check(bad, 32) == BAD


def test_implausible_frame_with_a_matching_sum_is_refused():
    # Swap PM1.0 and PM10 (atmospheric): the sum is unchanged, the order is impossible.
    f = bytearray(EXAMPLE)
    f[11], f[15] = f[15], f[11]
    assert fr.checksum(f, 30) == 0x01D1
    assert fr.check(f, 32) == BAD
    # Counts must fall with size: more particles > 0.5 µm than > 0.3 µm is damage.
    words = [5, 8, 12, 5, 8, 12, 100, 276, 61, 4, 2, 1, 0]
    assert fr.check(bytearray(encode_data(words)), 32) == BAD


# -- the stream parser -------------------------------------------------------------------


def test_stream_starting_mid_frame_with_garbage_drops_and_bad_sums():
    a, b, c, d = _frame(1, 10, 20), _frame(2, 20, 30), _frame(3, 30, 40), _frame(4, 40, 50)
    bad = bytearray(c)
    bad[9] ^= 0x10  # a bit error: the sum no longer matches
    dropped = b[:12] + b[13:]
    stream = a[13:] + b"\x00\x42\xff\x42\x4d" + a + dropped + bytes(bad) + d + b"\x42\x4d\x00"
    for chunk in (1, 5, 32, 1000):
        p, seen = _parse(stream, chunk)
        assert seen == [10, 40], (chunk, seen)
        assert p.bad >= 1 and p.skipped > 0
        assert p.n == 3  # the trailing start of a frame waits for more bytes


def test_false_start_inside_noise_does_not_hide_the_real_frame():
    # A start and a valid length in the noise swallow the real frame's first bytes;
    # the parser must slide back into them instead of throwing them away.
    frame = _frame(5, 8, 12)
    stream = b"\x42\x4d\x00\x1c\x11\x22" + frame + frame
    p, seen = _parse(stream, 64)
    assert seen == [8, 8]
    assert p.bad == 1


def test_reply_inside_a_stream_of_data_frames():
    stream = _frame(1, 2, 3) + PASSIVE_REPLY + _frame(4, 5, 6)
    p, seen = _parse(stream, 3)
    assert seen == [2, 5] and p.replies == 1 and p.bad == 0 and p.skipped == 0


# -- reading the simulated sensor ------------------------------------------------------------


def test_values_follow_the_air_with_cf1_and_counts_beside():
    sensor, chip, uart, env, clk, pin = _setup()
    for pm1, pm25, pm10 in ((0.0, 0.0, 0.0), (12.0, 35.0, 60.0), (150.0, 300.0, 420.0)):
        env.set(pm1_0=pm1, pm2_5=pm25, pm10=pm10)
        assert sensor.read() == {"pm1_0": int(pm1), "pm2_5": int(pm25), "pm10": int(pm10)}
    cf1 = sensor.values_cf1()
    assert cf1["pm2_5"] > 300 and cf1["pm1_0"] <= cf1["pm2_5"] <= cf1["pm10"]
    counts = sensor.counts()
    assert sorted(counts) == sorted(fr.COUNT_NAMES)
    assert counts["n0_3"] >= counts["n0_5"] >= counts["n1_0"] >= counts["n2_5"] >= counts["n5_0"] >= counts["n10"]
    assert sensor.version_and_error() == (0, 0)


def test_active_cadence_is_fast_when_the_air_changes():
    sensor, chip, uart, env, clk, pin = _setup(mode="active")
    clk.sleep_ms(23000)  # steady 2300 ms first (pm_uart_checks: active mode sends a frame every interval)
    uart.read()
    for pm25 in (100.0, 200.0, 300.0, 400.0):  # smoke moving in
        env.set(pm2_5=pm25, pm10=pm25 + 50)
        for _ in range(10):
            clk.sleep_ms(100)
            uart.read()
    gaps = [b - a for a, b in zip(chip.recent[-8:], chip.recent[-7:])]
    fast = [g for g in gaps if g < 2300]
    assert fast and all(200 <= g <= 800 for g in fast), gaps
    chip._fast, chip._prev_pm25 = True, 50.0  # the dirtier, the faster
    assert chip.interval_ms() == 700
    chip._prev_pm25 = 400.0
    assert chip.interval_ms() == 200


def test_construction_switches_to_passive_and_wakes():
    sensor, chip, uart, env, clk, pin = _setup(warm=False)
    assert chip.mode == "passive" and not chip.sleeping
    cmds = [c[1] for c in chip.commands]
    assert fr.command(fr.CMD_MODE, 0) in cmds


# -- warm-up and sleep ----------------------------------------------------------------------


def test_asleep_the_model_hears_only_the_wake_up():
    sensor, chip, uart, env, clk, pin = _setup()
    sensor.sleep()
    n = len(chip.commands)
    uart.write(fr.command(fr.CMD_MODE, 1))
    uart.write(fr.command(fr.CMD_READ, 0))
    clk.sleep_ms(100)
    assert uart.any() == 0 and len(chip.commands) == n
    uart.write(fr.command(fr.CMD_SLEEP, 1))
    assert not chip.sleeping


def test_set_pin_low_sleeps_the_model():
    clk = virtual_clock()
    set_pin = SimPin("set", value=1)
    chip = SimPMS5003(Environment(), set_pin=set_pin, noise=False)
    uart = SimUART(chip)
    clk.sleep_ms(5000)
    assert uart.any() > 0
    set_pin.off()
    uart.read()
    clk.sleep_ms(10000)
    assert chip.sleeping and uart.any() == 0
    set_pin.on()
    clk.sleep_ms(3000)
    assert uart.any() > 0


# -- faults: a clear error, never a wrong number ------------------------------------------


def test_mode_is_validated_with_the_bad_value_named():
    sensor, chip, uart, env, clk, pin = _setup()
    e = raises(ValueError, PMS5003, uart, "turbo")
    assert "turbo" in message(e)
    # the options of the base (power pin, warm-up, ...): pm_uart_checks


def test_hang_with_a_dead_switch_keeps_failing_clearly():
    sensor, chip, uart, env, clk, pin = _setup(power=True)
    chip.faults.absent = True  # unplugged: power cycles cannot help
    e = raises(ETIMEDOUT, sensor.read)
    assert "sleep/wake and a power cycle" in message(e)
    e = raises(ETIMEDOUT, sensor.read)
    assert "no answer after a power cycle" in message(e)  # straight to the switch now
    assert sensor.recoveries == 0 and sensor.recovery_attempts == 3
    chip.faults.absent = False
    raises(EAGAIN, sensor.read)
    assert sensor.recoveries == 1


def test_frozen_until_power_escalates_to_the_switch():
    sensor, chip, uart, env, clk, pin = _setup(noise=True, stale_s=30, power=True)
    sensor.read()
    chip.faults.freeze("power")
    hows = []
    for _ in range(40):
        clk.sleep_ms(10000)
        try:
            sensor.read()
        except OSError as e:
            assert e.args[0] == EAGAIN, e
            if "recovered" in message(e):
                hows.append(sensor.last_recovery)
            if len(hows) == 2:
                break
    assert hows == ["sleep/wake", "a power cycle"]
    assert sensor.recoveries == 2 and chip.faults.frozen is None
    clk.sleep_ms(30000)
    sensor.read()


def test_repeated_frames_within_stale_s_are_fine():
    sensor, chip, uart, env, clk, pin = _setup(noise=False, stale_s=600)
    for _ in range(50):
        clk.sleep_ms(10000)
        assert sensor.read()["pm2_5"] == 8  # identical frames for 500 s
    assert sensor.recoveries == 0


def test_power_pin_polarity_and_construction_power_on():
    clk = virtual_clock()
    pin = SimPin("pm_power_n", value=1)  # active low switch, off at boot
    chip = SimPMS5003(Environment(), power_pin=pin, power_active=0, noise=False)
    assert not chip.powered
    sensor = PMS5003(SimUART(chip), power_pin=pin, power_active=0)
    assert pin.value() == 0 and chip.powered and chip.mode == "passive"
    clk.sleep_ms(30000)
    assert sensor.read()["pm2_5"] == 8


def test_pmsa003_reports_its_version_word():
    clk = virtual_clock()
    chip = SimPMS5003(Environment(), variant="pmsa003", noise=False)
    clk.sleep_ms(1000)
    sensor = PMS5003(SimUART(chip), warmup_s=0)
    sensor.read()
    assert sensor.version_and_error() == (0x97, 0)

