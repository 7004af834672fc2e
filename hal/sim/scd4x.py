# A Sensirion SCD40/SCD41/SCD43 (CO2, temperature, humidity) at command level, after
# the SCD4x datasheet (sections 3.4 to 3.10, table 9 "SCD4x command overview"):
#
# - idle after power-up (1000 ms during which it NACKs, 3.1); periodic measurement
#   (a new value every 5 s, the first 5 s after the start), low-power periodic (30 s),
#   single shot (SCD41/SCD43 only: 5000 ms, or 50 ms for RH/T only), power-down;
# - in periodic mode only read_measurement, get_data_ready_status,
#   stop_periodic_measurement and set/get_ambient_pressure are accepted: every other
#   command is NACKed (table 9, column "during meas.");
# - every command busy for its execution time (table 9): the chip NACKs its address
#   until then, e.g. 500 ms after stop_periodic_measurement;
# - read_measurement empties the buffer; with nothing in it the read header is NACKed;
#   get_data_ready_status answers 0x8006 when a value waits, 0x8000 when not (only
#   the lower 11 bits count);
# - settings in RAM (temperature offset, altitude, ambient pressure, ASC), persisted to
#   EEPROM by persist_settings, reloaded by reinit and at power-up, defaults restored by
#   perform_factory_reset;
# - the CO2 the chip reports depends on the pressure it assumes (the set ambient
#   pressure, else the one of the set altitude): a photoacoustic sensor counts molecules,
#   so it reports co2 * p_actual / p_assumed. Feeding it the real pressure (from a
#   BME280) makes it exact.
#
# Values come from env.sample("co2"/"temperature"/"humidity"/"pressure").
# Faults: the bus's Faults (absent, fail, corrupt), faults.stuck_busy (no measurement
# ever completes: data never ready), hang() until power_cycle().

from hal.sim.environment import Environment
from hal.sim.sensirion import SensirionChip

IDLE = 0
PERIODIC = 1
LOW_POWER = 2
SINGLE_SHOT = 3  # a single shot in progress (the chip is busy until it ends)
ASLEEP = 4  # power_down

_STATE_NAMES = ("idle", "periodic measurement", "low-power periodic measurement", "single shot", "power-down")

# Execution times in ms (table 9; reinit 30 ms as in datasheet version 1.5+).
EXEC_MS = {
    0x21B1: 0,  # start_periodic_measurement
    0xEC05: 1,  # read_measurement
    0x3F86: 500,  # stop_periodic_measurement
    0x241D: 1,  # set_temperature_offset
    0x2318: 1,  # get_temperature_offset
    0x2427: 1,  # set_sensor_altitude
    0x2322: 1,  # get_sensor_altitude
    0xE000: 1,  # set/get_ambient_pressure
    0x362F: 400,  # perform_forced_recalibration
    0x2416: 1,  # set_automatic_self_calibration_enabled
    0x2313: 1,  # get_automatic_self_calibration_enabled
    0x21AC: 0,  # start_low_power_periodic_measurement
    0xE4B8: 1,  # get_data_ready_status
    0x3615: 800,  # persist_settings
    0x3682: 1,  # get_serial_number
    0x3639: 10000,  # perform_self_test
    0x3632: 1200,  # perform_factory_reset
    0x3646: 30,  # reinit
    0x202F: 1,  # get_sensor_variant
    0x219D: 5000,  # measure_single_shot (SCD41/43)
    0x2196: 50,  # measure_single_shot_rht_only (SCD41/43)
    0x36E0: 1,  # power_down (SCD41/43)
    0x36F6: 30,  # wake_up (SCD41/43)
}
# Accepted while a periodic measurement runs (table 9, "during meas.": yes).
DURING_MEASUREMENT = (0xEC05, 0x3F86, 0xE000, 0xE4B8)
# Commands that take one argument word, and those answered by a read (0xE000 is both:
# set with an argument, get without).
_WRITES = (0x241D, 0x2427, 0x2416, 0x362F)
_READS = (0xEC05, 0x2318, 0x2322, 0x2313, 0xE4B8, 0x3682, 0x3639, 0x202F, 0x362F)
_SINGLE_SHOT_ONLY = (0x219D, 0x2196, 0x36E0, 0x36F6)
POWER_UP_MS = 1000
PERIOD_MS = 5000
LOW_POWER_PERIOD_MS = 30000

VARIANT_CODES = {"scd40": 0x0000, "scd41": 0x1000, "scd43": 0x5000}
DEFAULT_SETTINGS = {"temperature_offset_raw": 1498, "altitude_m": 0, "asc": 1}  # 4 °C = 1498 * 175 / 65535


def raw_temperature(celsius):
    """The word the chip reports for a temperature: T = -45 + 175 * raw / 65535."""
    return min(0xFFFF, max(0, int((celsius + 45.0) * 65535.0 / 175.0 + 0.5)))


def raw_humidity(rh):
    """The word for a relative humidity: RH = 100 * raw / 65535."""
    return min(0xFFFF, max(0, int(rh * 65535.0 / 100.0 + 0.5)))


def pressure_at_altitude_hpa(altitude_m):
    """Barometric formula (standard atmosphere) for the pressure a set altitude implies."""
    return 1013.25 * (1.0 - 2.25577e-5 * altitude_m) ** 5.25588


class SimSCD4x(SensirionChip):
    """Attach to a SimI2C at 0x62. variant "scd40", "scd41" or "scd43";
    variant_command=False for firmware without get_sensor_variant (0x202F)."""

    name = "scd4x"

    def __init__(self, env=None, variant="scd41", serial=0x0C7A4F6E3B21, variant_command=True, clock=None):
        if variant not in VARIANT_CODES:
            raise ValueError("variant must be 'scd40', 'scd41' or 'scd43', not %r" % (variant,))
        self.env = env if env is not None else Environment()
        self.variant = variant
        self.serial = serial
        self.variant_command = variant_command
        self.eeprom = dict(DEFAULT_SETTINGS)
        self.self_heating_c = 4.0  # what the default 4 °C temperature offset corrects
        self.measurements = 0
        super().__init__(clock, reply_words=9)

    # -- state ---------------------------------------------------------------------------

    def reset_state(self):
        self.state = IDLE
        self._reload()
        self.ambient_pressure_hpa = None  # volatile: lost at power-off
        self._data_ready = False
        self._next_ms = 0
        self._single_end = 0
        self._single_rht_only = False
        self._last_env = None
        self._data = [0, 0, 0]  # co2, t, rh words of the buffered measurement
        self.busy(POWER_UP_MS)

    def _reload(self):
        e = self.eeprom
        self.temperature_offset_raw = e["temperature_offset_raw"]
        self.altitude_m = e["altitude_m"]
        self.asc = e["asc"]

    @property
    def state_name(self):
        return _STATE_NAMES[self.state]

    def update(self, now):
        """Complete the measurements due by `now`."""
        if self.faults.stuck_busy:
            return
        state = self.state  # (no tuple of names here: this runs in every transaction)
        if state == PERIODIC or state == LOW_POWER:
            if now >= self._next_ms:
                period = PERIOD_MS if self.state == PERIODIC else LOW_POWER_PERIOD_MS
                while self._next_ms <= now:
                    self._next_ms += period
                self._measure(now, False)
        elif state == SINGLE_SHOT and now >= self._single_end:
            self.state = IDLE
            self._measure(now, self._single_rht_only)

    def _measure(self, now, rht_only):
        """One measurement into the output buffer. Converts only when the air changed, so
        that a driver's fetch against steady air allocates nothing in the model either."""
        self.measurements += 1
        env = self.env
        co2 = env.sample("co2", now)
        t = env.sample("temperature", now)
        rh = env.sample("humidity", now)
        p = env.sample("pressure", now)
        last = self._last_env
        if (
            last is None
            or last[0] != co2
            or last[1] != t
            or last[2] != rh
            or last[3] != p
            or last[4] != self.ambient_pressure_hpa
            or last[5] != self.altitude_m
            or last[6] != self.temperature_offset_raw
        ):
            settings = (self.ambient_pressure_hpa, self.altitude_m, self.temperature_offset_raw)
            self._last_env = (co2, t, rh, p) + settings
            assumed = self.ambient_pressure_hpa
            if assumed is None:
                assumed = pressure_at_altitude_hpa(self.altitude_m)
            offset_c = self.temperature_offset_raw * 175.0 / 65535.0
            d = self._data
            d[0] = min(0xFFFF, max(0, int(co2 * p / assumed + 0.5)))
            d[1] = raw_temperature(t + self.self_heating_c - offset_c)
            d[2] = raw_humidity(rh)
            self._co2_word = d[0]
        self._data[0] = 0 if rht_only else self._co2_word
        self._data_ready = True

    # -- commands -----------------------------------------------------------------------------

    def command(self, cmd, args, n_args, now):
        state = self.state
        if state == ASLEEP:
            if cmd == 0x36F6:
                self.state = IDLE
                self.busy(EXEC_MS[cmd])
            # wake_up is not acknowledged (3.10.4); nothing else is heard while asleep.
            self.nack_address("powered down")
        if cmd not in EXEC_MS:
            self.refuse(cmd, "unknown command")
        if cmd in _SINGLE_SHOT_ONLY and self.variant == "scd40":
            self.refuse(cmd, "an SCD40 has no single shot / power-down")
        if (state == PERIODIC or state == LOW_POWER) and cmd not in DURING_MEASUREMENT:
            self.refuse(cmd, "not allowed during %s" % _STATE_NAMES[state])
        if cmd == 0x202F and not self.variant_command:
            self.refuse(cmd, "firmware without get_sensor_variant")
        writes = cmd in _WRITES or (cmd == 0xE000 and n_args)
        if n_args != (1 if writes else 0):
            self.refuse(cmd, "takes %d argument words, got %d" % (1 if writes else 0, n_args))
        exec_ms = EXEC_MS[cmd]
        arg = self.arg(args, 0) if n_args else 0

        if cmd == 0x21B1 or cmd == 0x21AC:
            self.state = PERIODIC if cmd == 0x21B1 else LOW_POWER
            self._next_ms = now + (PERIOD_MS if cmd == 0x21B1 else LOW_POWER_PERIOD_MS)
            self._data_ready = False
        elif cmd == 0x3F86:
            self.state = IDLE  # accepted in idle too, where it changes nothing
        elif cmd == 0x241D:
            self.temperature_offset_raw = arg
        elif cmd == 0x2427:
            self.altitude_m = arg
        elif cmd == 0xE000 and n_args:
            self.ambient_pressure_hpa = arg
        elif cmd == 0x2416:
            self.asc = arg & 1
        elif cmd == 0x3615:
            self.eeprom = {
                "temperature_offset_raw": self.temperature_offset_raw,
                "altitude_m": self.altitude_m,
                "asc": self.asc,
            }
        elif cmd == 0x3632:
            self.eeprom = dict(DEFAULT_SETTINGS)
            self._reload()
        elif cmd == 0x3646:
            self._reload()
        elif cmd == 0x219D or cmd == 0x2196:
            self.state = SINGLE_SHOT
            self._single_end = now + exec_ms
            self._single_rht_only = cmd == 0x2196
            self._data_ready = False
        elif cmd == 0x36E0:
            self.state = ASLEEP
        elif cmd == 0x362F:
            self._frc_target = arg
        # Commands answered by a read: read_measurement, the getters, self test, FRC.
        if cmd in _READS or (cmd == 0xE000 and not n_args):
            self.point(cmd, exec_ms)
        else:
            self.busy(exec_ms)

    def answer(self, cmd, now):
        if cmd == 0xEC05:
            if not self._data_ready:
                self.nack_address("read_measurement: no new data in the buffer")
            d = self._data
            self.put_word(0, d[0])
            self.put_word(1, d[1])
            self.put_word(2, d[2])
            self._data_ready = False  # the buffer is emptied upon read-out
            self._pointer = -1
            return 3
        if cmd == 0xE4B8:
            self.put_word(0, 0x8006 if self._data_ready else 0x8000)
            return 1
        if cmd == 0x3682:
            s = self.serial
            self.put_word(0, (s >> 32) & 0xFFFF)
            self.put_word(1, (s >> 16) & 0xFFFF)
            self.put_word(2, s & 0xFFFF)
            return 3
        if cmd == 0x202F:
            self.put_word(0, VARIANT_CODES[self.variant])
            return 1
        if cmd == 0x2318:
            self.put_word(0, self.temperature_offset_raw)
        elif cmd == 0x2322:
            self.put_word(0, self.altitude_m)
        elif cmd == 0x2313:
            self.put_word(0, self.asc)
        elif cmd == 0xE000:
            self.put_word(0, self.ambient_pressure_hpa if self.ambient_pressure_hpa is not None else 1013)
        elif cmd == 0x3639:
            self.put_word(0, 0)  # self test passed
        elif cmd == 0x362F:
            # FRC correction + 0x8000; 0xFFFF when it failed (not measuring before it).
            co2 = int(self.env.sample("co2", now) + 0.5)
            self.put_word(0, (self._frc_target - co2 + 0x8000) & 0xFFFF)
        return 1
