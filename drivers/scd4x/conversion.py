# SCD4x signal conversion (SCD4x datasheet 3.5.2 read_measurement, 3.6 compensation,
# 3.8.2 get_data_ready_status, 3.9 advanced features): pure functions on the 16-bit words.


def temperature_c(raw):
    """Temperature in °C from its word: T = -45 + 175 * raw / 65535 (0x6667 is 25.0 °C)."""
    return -45.0 + 175.0 * raw / 65535.0


def humidity_rh(raw):
    """Relative humidity in %RH from its word: RH = 100 * raw / 65535 (0x5EB9 is 37.0 %RH)."""
    return 100.0 * raw / 65535.0


def temperature_offset_word(offset_c):
    """The word set_temperature_offset takes for an offset in °C: offset * 65535 / 175
    (5.4 °C is 0x07E6). ValueError outside 0..20 °C, the datasheet's recommended range."""
    if not 0 <= offset_c <= 20:
        raise ValueError("SCD4x: temperature offset must be 0..20 °C, not %r" % (offset_c,))
    return int(offset_c * 65535 / 175 + 0.5)


def temperature_offset_c(word):
    return 175.0 * word / 65535.0


def ambient_pressure_word(pressure_hpa):
    """The word set_ambient_pressure takes: the pressure in hPa (= Pa / 100), rounded.
    ValueError outside 700..1200 hPa, the range the chip compensates."""
    if not 700 <= pressure_hpa <= 1200:
        raise ValueError("SCD4x: ambient pressure must be 700..1200 hPa, not %r" % (pressure_hpa,))
    return int(pressure_hpa + 0.5)


def altitude_word(altitude_m):
    """The word set_sensor_altitude takes: metres above sea level, 0..3000."""
    if not 0 <= altitude_m <= 3000:
        raise ValueError("SCD4x: sensor altitude must be 0..3000 m, not %r" % (altitude_m,))
    return int(altitude_m + 0.5)


def data_ready(status):
    """get_data_ready_status: data is ready when any of the lower 11 bits is set."""
    return (status & 0x07FF) != 0


def serial_number(w0, w1, w2):
    """The 48-bit serial number from get_serial_number's three words, first word most significant."""
    return (w0 << 32) | (w1 << 16) | w2


_VARIANTS = {0x0: "SCD40", 0x1: "SCD41", 0x5: "SCD43"}


def variant_name(word):
    """get_sensor_variant: bits 15..12 name the chip (0 SCD40, 1 SCD41, 5 SCD43)."""
    code = (word >> 12) & 0xF
    return _VARIANTS.get(code, "SCD4x variant 0x%x" % code)


def frc_correction_ppm(word):
    """perform_forced_recalibration's answer: the correction in ppm, None when it failed (0xFFFF)."""
    if word == 0xFFFF:
        return None
    return word - 0x8000
