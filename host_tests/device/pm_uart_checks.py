# The behaviour that the UART particulate sensors (PMS5003, SDS011) get from their shared
# base, drivers/pm_uart.py: polling, warm-up, sleep, faults and their recovery, heap per
# reading. Each check takes a Chip (what differs between the sensors) and is run for each
# chip by register(), which puts one top-level test_* function per check into the chip's
# test module: the MicroPython runner (host_tests/mprun.py) collects module functions
# only, no classes or fixtures. Runs on CPython and inside MicroPython.

from errno import EAGAIN, EINVAL, ENODEV, ETIMEDOUT

from hal.sim.bus import SimPin, SimUART
from hal.sim.environment import Environment
from host_tests.device.support import heap_allocated, message, raises, virtual_clock


class Chip:
    """What the shared checks need to know about one sensor.

    name: as in its error messages; driver, model: the driver class and the simulator's
    model class; polled_mode: the driver's mode in which it asks for every frame, and
    polled(model): whether the model is in that mode; request: the bytes of that ask;
    frame_len: the bytes of a data frame; active_interval_ms: the time between
    frames in active mode (clean air); air: the Environment values of the default air
    and reading: what read() gives for it; noisy: (low, high) per value with the model's
    noise on; garbage_bytes: noise the fault test injects; boot_ms: the wait after a power
    cycle before the driver is asked again; answers: command byte -> the frame a canned
    UART answers with (the data frame for a read)."""

    def __init__(self, name, driver, model, polled_mode, polled, request, frame_len, active_interval_ms, air,
                 reading, noisy, garbage_bytes, boot_ms, answers):
        self.name = name
        self.driver = driver
        self.model = model
        self.polled_mode = polled_mode
        self.polled = polled
        self.request = request
        self.frame_len = frame_len
        self.active_interval_ms = active_interval_ms
        self.air = air
        self.reading = reading
        self.noisy = noisy
        self.garbage_bytes = garbage_bytes
        self.boot_ms = boot_ms
        self.answers = answers


def setup(chip, mode=None, power=False, noise=False, warm=True, env=None, chip_options=None, **options):
    """A booted model on a simulated UART, the driver on it (warmed up unless warm=False);
    returns (sensor, model, uart, env, clock, power pin or None)."""
    clk = virtual_clock()
    env = env if env is not None else Environment(**chip.air)
    pin = SimPin("pm_power", value=1) if power else None
    model = chip.model(env, power_pin=pin, noise=noise, **(chip_options or {}))
    uart = SimUART(model)
    clk.sleep_ms(1000)  # the sensor has booted
    sensor = chip.driver(uart, mode or chip.polled_mode, power_pin=pin, **options)
    if warm:
        clk.sleep_ms(sensor.warmup_left_ms())
    return sensor, model, uart, env, clk, pin


def parse(parser_class, pm2_5_of, stream, chunk, **attributes):
    """Feed stream in pieces of chunk bytes to a parser_class (the driver's frame parser,
    with the given attributes set) that notes pm2_5_of(window, length) of every frame it
    accepts (None: not a data frame); returns (the parser, the values noted)."""

    class Recorder(parser_class):
        def __init__(self):
            super().__init__()
            self.seen = []

        def accept(self, win, length):
            super().accept(win, length)
            v = pm2_5_of(win, length)
            if v is not None:
                self.seen.append(v)

    p = Recorder()
    for name in attributes:
        setattr(p, name, attributes[name])
    buf = bytearray(stream)
    for start in range(0, len(buf), chunk):
        part = buf[start : start + chunk]
        p.feed(part, len(part))
    return p, p.seen


def the_air_or_a_clear_error(sensor, clk, reading, why=None):
    """One read(): exactly the reading, or OSError EAGAIN/ETIMEDOUT (then the warm-up of
    its recovery is waited out); never a wrong number. why goes into a failure's text."""
    try:
        v = sensor.read()
    except OSError as e:
        assert e.args[0] in (EAGAIN, ETIMEDOUT), (e, why)
        clk.sleep_ms(sensor.warmup_left_ms())
    else:
        assert v == reading, (v, why)


def _plausible(chip, v):
    for key in chip.noisy:
        low, high = chip.noisy[key]
        assert low <= v[key] <= high, v


# -- reading the simulated sensor ------------------------------------------------------------


def polled_read_is_two_transactions_and_the_contract_dict(chip):
    sensor, model, uart, env, clk, pin = setup(chip)
    uart.clear_log()
    v = sensor.read()
    assert v == chip.reading
    assert uart.transactions == 2
    (_, op1, _, _, data1), (_, op2, _, _, data2) = uart.log
    assert (op1, data1) == ("write", chip.request)
    assert op2 == "read" and len(data2) == chip.frame_len


def active_mode_returns_a_fresh_frame_not_what_piled_up(chip):
    sensor, model, uart, env, clk, pin = setup(chip, mode="active")
    assert not chip.polled(model)
    assert sensor.read()["pm2_5"] == chip.reading["pm2_5"]
    env.set(pm2_5=40.0, pm10=50.0)
    clk.sleep_ms(60000)  # the UART buffer filled up with old frames meanwhile
    assert uart.overruns > 0
    assert sensor.read()["pm2_5"] == 40


def active_mode_sends_a_frame_every_interval(chip):
    sensor, model, uart, env, clk, pin = setup(chip, mode="active")
    uart.read()
    sent = model.frames_sent
    got = 0
    for _ in range(2):  # two halves: ten PMS5003 frames overflow the 256-byte UART buffer
        clk.sleep_ms(5 * chip.active_interval_ms)
        got += len(uart.read())
    assert got == 10 * chip.frame_len and model.frames_sent - sent == 10
    t = model.recent
    assert [b - a for a, b in zip(t[-6:], t[-5:])] == [chip.active_interval_ms] * 5


# -- warm-up and sleep ----------------------------------------------------------------------


def readings_during_warm_up_do_not_count(chip):
    sensor, model, uart, env, clk, pin = setup(chip, warm=False)
    e = raises(EAGAIN, sensor.read)
    assert "warming up" in message(e) and chip.name in message(e)
    clk.sleep_ms(20000)
    left = sensor.warmup_left_ms()
    assert 0 < left <= 10000
    raises(EAGAIN, sensor.read)
    clk.sleep_ms(left)
    assert sensor.read()["pm2_5"] == chip.reading["pm2_5"]


def the_model_reads_low_while_its_fan_spins_up(chip):
    sensor, model, uart, env, clk, pin = setup(chip, warm=False, warmup_s=0)
    assert sensor.read()["pm2_5"] < chip.reading["pm2_5"]  # what the driver's warm-up keeps from the data


def sleep_stops_frames_and_wake_restarts_the_warm_up(chip):
    sensor, model, uart, env, clk, pin = setup(chip, mode="active")
    sensor.sleep()
    assert model.sleeping and sensor.asleep
    e = raises(EAGAIN, sensor.read)
    assert "asleep" in message(e)
    uart.read()
    clk.sleep_ms(10000)
    assert uart.any() == 0  # fan off, nothing sent
    sensor.wake()
    assert not model.sleeping
    raises(EAGAIN, sensor.read)
    clk.sleep_ms(30000)
    assert sensor.read() == chip.reading


# -- faults: a clear error, never a wrong number ------------------------------------------


def base_options_are_validated_with_the_bad_value_named(chip):
    sensor, model, uart, env, clk, pin = setup(chip)
    e = raises(ValueError, chip.driver, uart, chip.polled_mode, power_pin=5)
    assert "5" in message(e)
    raises(ValueError, chip.driver, uart, chip.polled_mode, power_active=2)
    raises(ValueError, chip.driver, uart, chip.polled_mode, warmup_s=-1)
    raises(ValueError, chip.driver, uart, chip.polled_mode, stale_s=0)
    e = raises(EINVAL, sensor.power_cycle)
    assert "power switch" in message(e)


def absent_sensor_is_no_device(chip):
    virtual_clock()
    model = chip.model(Environment())
    model.faults.absent = True
    e = raises(ENODEV, chip.driver, SimUART(model))
    assert chip.name in message(e) and "no answer" in message(e)


def garbage_dropped_bytes_and_bad_checksums_never_give_a_wrong_number(chip):
    sensor, model, uart, env, clk, pin = setup(chip, mode="active", noise=True)
    f = model.faults
    for i in range(12):
        if i % 3 == 0:
            f.garbage(chip.garbage_bytes)
        elif i % 3 == 1:
            f.drop(1)
        else:
            f.bad_checksum(1)
        _plausible(chip, sensor.read())
    assert sensor.bad_frames >= 4 and sensor.noise_bytes >= 4 * chip.garbage_bytes, (sensor.bad_frames, sensor.noise_bytes)
    assert sensor.recoveries == 0


def a_damaged_answer_in_polled_mode_is_asked_again(chip):
    sensor, model, uart, env, clk, pin = setup(chip)
    model.faults.bad_checksum(1)
    uart.clear_log()
    assert sensor.read() == chip.reading
    writes = [e for e in uart.log if e[1] == "write"]
    assert len(writes) == 2 and sensor.bad_frames == 1


def flipped_bits_on_the_line_never_give_a_wrong_number(chip):
    sensor, model, uart, env, clk, pin = setup(chip, stale_s=None)
    for i in range(20):
        model.faults.corrupt(1, "flip" if i % 2 else "ones")
        the_air_or_a_clear_error(sensor, clk, chip.reading)
    assert sensor.noise_bytes > 0


def hang_is_cured_by_a_power_cycle_and_counted(chip):
    sensor, model, uart, env, clk, pin = setup(chip, power=True)
    model.faults.hang()
    e = raises(EAGAIN, sensor.read)
    assert "recovered by a power cycle" in message(e) and "warming up" in message(e)
    assert sensor.recoveries == 1 and sensor.recovery_attempts == 2
    assert sensor.last_recovery == "a power cycle"
    assert "no valid frame" in sensor.last_fault
    assert model.power_cycles == 1 and not model.faults.hung
    assert chip.polled(model)  # set up again after the power-on defaults
    clk.sleep_ms(sensor.warmup_left_ms())
    assert sensor.read() == chip.reading
    st = sensor.stats()
    assert st["recoveries"] == 1 and st["frames"] == sensor.frames


def hang_without_a_power_switch_is_a_clear_timeout(chip):
    sensor, model, uart, env, clk, pin = setup(chip)
    model.faults.hang()
    e = raises(ETIMEDOUT, sensor.read)
    assert "no answer after sleep/wake" in message(e)
    assert sensor.recoveries == 0 and sensor.recovery_attempts == 1
    raises(ETIMEDOUT, sensor.read)  # tries sleep/wake again: it is all it has
    assert sensor.recovery_attempts == 2
    model.power_cycle()  # a technician pulls the plug
    clk.sleep_ms(chip.boot_ms)
    e = raises(EAGAIN, sensor.read)  # set up again before it is trusted
    assert "recovered by sleep/wake" in message(e), message(e)
    assert chip.polled(model)
    clk.sleep_ms(30000)
    assert sensor.read() == chip.reading


def frozen_sensor_is_cured_by_sleep_wake(chip):
    sensor, model, uart, env, clk, pin = setup(chip, noise=True, stale_s=60)
    first = sensor.read()
    model.faults.freeze("wake")
    e = None
    for _ in range(20):
        clk.sleep_ms(10000)
        try:
            sensor.read()
        except OSError as err:
            e = err
            break
    assert e is not None and e.args[0] == EAGAIN, e
    assert "same frame" in message(e) and "sleep/wake" in message(e)
    assert sensor.recoveries == 1 and sensor.last_recovery == "sleep/wake" and model.faults.frozen is None
    clk.sleep_ms(30000)
    _plausible(chip, sensor.read())
    assert first


# -- cost per reading -------------------------------------------------------------------------


class CannedUART:
    """A UART that answers each command (by its command byte, buf[2]) with a fixed frame
    and allocates nothing, so that a heap measurement sees only the driver."""

    def __init__(self, answers, size):
        self.answers = answers
        self.out = bytearray(size)
        self.n = self.pos = 0

    def write(self, buf):
        a = self.answers.get(buf[2])
        if a is not None:
            for i in range(len(a)):
                self.out[i] = a[i]
            self.n, self.pos = len(a), 0
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


def measure_allocates_no_heap_memory(chip):
    virtual_clock()
    sensor = chip.driver(CannedUART(chip.answers, chip.frame_len), warmup_s=0)
    sensor.measure()
    used = heap_allocated(sensor.measure, repeat=20)
    assert used in (None, 0), "measure() allocated %d bytes in 20 calls" % used
    assert sensor.values() == chip.reading


CHECKS = (
    polled_read_is_two_transactions_and_the_contract_dict,
    active_mode_returns_a_fresh_frame_not_what_piled_up,
    active_mode_sends_a_frame_every_interval,
    readings_during_warm_up_do_not_count,
    the_model_reads_low_while_its_fan_spins_up,
    sleep_stops_frames_and_wake_restarts_the_warm_up,
    base_options_are_validated_with_the_bad_value_named,
    absent_sensor_is_no_device,
    garbage_dropped_bytes_and_bad_checksums_never_give_a_wrong_number,
    a_damaged_answer_in_polled_mode_is_asked_again,
    flipped_bits_on_the_line_never_give_a_wrong_number,
    hang_is_cured_by_a_power_cycle_and_counted,
    hang_without_a_power_switch_is_a_clear_timeout,
    frozen_sensor_is_cured_by_sleep_wake,
    measure_allocates_no_heap_memory,
)


def _bound(check, chip):
    def test():
        check(chip)

    return test


def register(namespace, chip):
    """Put test_<check> into namespace (a test module's globals()) for every check, run
    for chip. A name the module defines itself is an error: it would hide a check."""
    for check in CHECKS:
        name = "test_" + check.__name__
        if name in namespace:
            raise ValueError("%s is defined twice: in the module and in pm_uart_checks" % name)
        test = _bound(check, chip)
        try:  # CPython: pytest reports the test under its name; MicroPython cannot rename
            test.__name__ = test.__qualname__ = name
            test.__doc__ = "%s, for the %s." % (check.__name__.replace("_", " "), chip.name)
        except AttributeError:
            pass
        namespace[name] = test
