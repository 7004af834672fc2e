# SDS011 driver and model: runs on CPython (pytest) and inside MicroPython
# (host_tests/test_on_micropython.py).

from errno import EAGAIN, ENODEV, ETIMEDOUT

from drivers.pm_uart import BAD, SKIP
from drivers.sds011 import SDS011
from drivers.sds011 import frames as fr
from hal.sim.bus import SimPin, SimUART
from hal.sim.environment import Environment
from hal.sim.sds011 import SimSDS011, encode_frame
from host_tests.device.support import heap_allocated, message, raises, virtual_clock


def _hex(s):
    return bytes(int(x, 16) for x in s.split())


# The protocol's own examples (Control Protocol V1.3): a sensor with ID 0xA160.
SLEEP_CMD = _hex("AA B4 06 01 00 00 00 00 00 00 00 00 00 00 00 FF FF 05 AB")
WORK_CMD = _hex("AA B4 06 01 01 00 00 00 00 00 00 00 00 00 00 FF FF 06 AB")
QUERY_CMD = _hex("AA B4 04 00 00 00 00 00 00 00 00 00 00 00 00 FF FF 02 AB")
SLEEP_REPLY = _hex("AA C5 06 01 00 00 A1 60 08 AB")
DATA_EXAMPLE = _hex("AA C0 D4 04 3A 0A A1 60 1D AB")  # PM2.5 123.6, PM10 261.8


class _Recorder(fr.Parser):
    def __init__(self):
        super().__init__()
        self.seen = []

    def accept(self, win, length):
        super().accept(win, length)
        if win[1] == fr.DATA:
            self.seen.append(fr.pm_tenths(win)[0])


def _parse(stream, chunk=3, device_id=None):
    p = _Recorder()
    p.device_id = device_id
    buf = bytearray(stream)
    for start in range(0, len(buf), chunk):
        part = buf[start : start + chunk]
        p.feed(part, len(part))
    return p, p.seen


def _data(pm25_tenths, pm10_tenths, device_id=0xA160):
    a, b = pm25_tenths, pm10_tenths
    return encode_frame(0xC0, (a, a >> 8, b, b >> 8, device_id >> 8, device_id))


def _setup(mode="query", power=False, noise=False, warm=True, env=None, chip_options=None, **options):
    clk = virtual_clock()
    env = env if env is not None else Environment(pm2_5=8.3, pm10=12.1)
    pin = SimPin("pm_power", value=1) if power else None
    chip = SimSDS011(env, power_pin=pin, noise=noise, **(chip_options or {}))
    uart = SimUART(chip)
    clk.sleep_ms(1000)
    sensor = SDS011(uart, mode, power_pin=pin, **options)
    if warm:
        clk.sleep_ms(sensor.warmup_left_ms())
    return sensor, chip, uart, env, clk, pin


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


def test_query_read_is_two_transactions_and_pm1_is_none():
    sensor, chip, uart, env, clk, pin = _setup()
    uart.clear_log()
    v = sensor.read()
    assert v == {"pm1_0": None, "pm2_5": 8.3, "pm10": 12.1}
    assert uart.transactions == 2
    (_, op1, _, _, data1), (_, op2, _, _, data2) = uart.log
    assert (op1, data1) == ("write", QUERY_CMD) and op2 == "read" and len(data2) == 10


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


def test_active_mode_returns_a_fresh_frame():
    sensor, chip, uart, env, clk, pin = _setup(mode="active")
    assert not chip.query_mode
    assert sensor.read()["pm2_5"] == 8.3
    env.set(pm2_5=40.0)
    clk.sleep_ms(60000)  # 60 old frames piled up meanwhile
    assert sensor.read()["pm2_5"] == 40.0


def test_active_mode_reports_every_second():
    sensor, chip, uart, env, clk, pin = _setup(mode="active")
    uart.read()
    sent = chip.frames_sent
    clk.sleep_ms(10000)
    assert len(uart.read()) == 100 and chip.frames_sent - sent == 10
    t = chip.recent
    assert [b - a for a, b in zip(t[-6:], t[-5:])] == [1000] * 5


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


def test_readings_during_warm_up_do_not_count():
    sensor, chip, uart, env, clk, pin = _setup(warm=False)
    e = raises(EAGAIN, sensor.read)
    assert "warming up" in message(e) and "SDS011" in message(e)
    clk.sleep_ms(sensor.warmup_left_ms())
    assert sensor.read()["pm2_5"] == 8.3


def test_the_model_reads_low_while_its_fan_spins_up():
    sensor, chip, uart, env, clk, pin = _setup(warm=False, warmup_s=0)
    assert sensor.read()["pm2_5"] < 8.3


def test_sleep_and_wake():
    sensor, chip, uart, env, clk, pin = _setup(mode="active")
    sensor.sleep()
    assert chip.sleeping and sensor.asleep
    e = raises(EAGAIN, sensor.read)
    assert "asleep" in message(e)
    uart.read()
    clk.sleep_ms(10000)
    assert uart.any() == 0
    sensor.wake()
    assert not chip.sleeping
    raises(EAGAIN, sensor.read)
    clk.sleep_ms(30000)
    assert sensor.read()["pm2_5"] == 8.3


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


# -- faults ------------------------------------------------------------------------------------


def test_absent_sensor_is_no_device():
    clk = virtual_clock()
    chip = SimSDS011(Environment())
    chip.faults.absent = True
    e = raises(ENODEV, SDS011, SimUART(chip))
    assert "SDS011" in message(e) and "no answer" in message(e)


def test_garbage_dropped_bytes_and_bad_checksums_never_give_a_wrong_number():
    sensor, chip, uart, env, clk, pin = _setup(mode="active", noise=True)
    f = chip.faults
    for i in range(12):
        if i % 3 == 0:
            f.garbage(25)
        elif i % 3 == 1:
            f.drop(1)
        else:
            f.bad_checksum(1)
        v = sensor.read()
        assert 7.9 <= v["pm2_5"] <= 8.6 and 11.7 <= v["pm10"] <= 12.5, v
    assert sensor.bad_frames >= 4 and sensor.noise_bytes >= 4 * 25
    assert sensor.recoveries == 0


def test_a_damaged_answer_in_query_mode_is_asked_again():
    sensor, chip, uart, env, clk, pin = _setup()
    chip.faults.bad_checksum(1)
    uart.clear_log()
    assert sensor.read()["pm10"] == 12.1
    assert len([e for e in uart.log if e[1] == "write"]) == 2 and sensor.bad_frames == 1


def test_flipped_bits_on_the_line_never_give_a_wrong_number():
    sensor, chip, uart, env, clk, pin = _setup(stale_s=None)
    for i in range(20):
        chip.faults.corrupt(1, "flip" if i % 2 else "ones")
        try:
            v = sensor.read()
        except OSError as e:
            assert e.args[0] in (EAGAIN, ETIMEDOUT), e
            clk.sleep_ms(sensor.warmup_left_ms())
        else:
            assert v == {"pm1_0": None, "pm2_5": 8.3, "pm10": 12.1}, v
    assert sensor.noise_bytes > 0


def test_hang_is_cured_by_a_power_cycle_and_counted():
    sensor, chip, uart, env, clk, pin = _setup(power=True)
    chip.faults.hang()
    e = raises(EAGAIN, sensor.read)
    assert "recovered by a power cycle" in message(e)
    assert sensor.recoveries == 1 and sensor.recovery_attempts == 2 and chip.power_cycles == 1
    assert "no valid frame" in sensor.last_fault
    clk.sleep_ms(sensor.warmup_left_ms())
    assert sensor.read()["pm2_5"] == 8.3


def test_hang_without_a_power_switch_is_a_clear_timeout():
    sensor, chip, uart, env, clk, pin = _setup()
    chip.faults.hang()
    e = raises(ETIMEDOUT, sensor.read)
    assert "no answer after sleep/wake" in message(e)
    assert sensor.recoveries == 0 and sensor.recovery_attempts == 1
    chip.power_cycle()
    clk.sleep_ms(1000)
    e = raises(EAGAIN, sensor.read)  # set up again before it is trusted
    assert "recovered by sleep/wake" in message(e)
    clk.sleep_ms(30000)
    assert sensor.read()["pm10"] == 12.1


def test_frozen_sensor_is_cured_by_sleep_wake():
    sensor, chip, uart, env, clk, pin = _setup(noise=True, stale_s=60)
    sensor.read()
    chip.faults.freeze("wake")
    e = None
    for _ in range(20):
        clk.sleep_ms(10000)
        try:
            sensor.read()
        except OSError as err:
            e = err
            break
    assert e is not None and e.args[0] == EAGAIN and "same frame" in message(e), e
    assert sensor.recoveries == 1 and sensor.last_recovery == "sleep/wake"


# -- cost per reading ---------------------------------------------------------------------------


class _CannedUART:
    """Answers each command like the sensor, with fixed frames, allocating nothing."""

    def __init__(self):
        self.out = bytearray(10)
        self.n = self.pos = 0
        self.data = _data(83, 121)
        self.replies = {}
        for cmd, val in ((2, 1), (6, 1), (7, 15), (8, 0)):
            self.replies[cmd] = encode_frame(0xC5, (cmd, 1, val, 0, 0xA1, 0x60))

    def write(self, buf):
        a = self.data if buf[2] == 4 else self.replies.get(buf[2])
        if a is not None:
            for i in range(10):
                self.out[i] = a[i]
            self.n, self.pos = 10, 0
        return len(buf)

    def any(self):
        return self.n - self.pos

    def readinto(self, buf):
        k = min(len(buf), self.n - self.pos)
        if not k:
            return None
        for i in range(k):
            buf[i] = self.out[self.pos + i]
        self.pos += k
        return k


def test_measure_allocates_no_heap_memory():
    virtual_clock()
    sensor = SDS011(_CannedUART(), warmup_s=0)
    sensor.measure()
    used = heap_allocated(sensor.measure, repeat=20)
    assert used in (None, 0), "measure() allocated %d bytes in 20 calls" % used
    assert sensor.values() == {"pm1_0": None, "pm2_5": 8.3, "pm10": 12.1}
