# SHT4x signal conversion and timing: pure functions on plain numbers (datasheet
# SHT4x v6, section 4.6 for the formulas, table 7 / section 4.5 for the durations).


def temperature_c(st):
    """Temperature in °C from the 16-bit ticks S_T: T = -45 + 175 * S_T / 65535."""
    return -45.0 + 175.0 * st / 65535.0


def humidity_rh(srh):
    """Relative humidity in %RH from the 16-bit ticks S_RH: RH = -6 + 125 * S_RH / 65535,
    cropped to 0..100 as the datasheet advises (4.6): the raw signal runs from -6 to 119."""
    rh = -6.0 + 125.0 * srh / 65535.0
    if rh < 0.0:
        return 0.0
    if rh > 100.0:
        return 100.0
    return rh


def temperature_milli(st):
    """Temperature in m°C with integers only (no float: nothing allocates on MicroPython)."""
    return (175000 * st) // 65535 - 45000


def humidity_milli(srh):
    """Relative humidity in m%RH with integers only, cropped to 0..100000."""
    rh = (125000 * srh) // 65535 - 6000
    return 0 if rh < 0 else (100000 if rh > 100000 else rh)


def ticks_for(temperature, humidity):
    """(S_T, S_RH) that a chip reports for these conditions: the inverse of the formulas,
    rounded and clipped to 16 bits (a simulator's and a test's helper)."""
    st = int((temperature + 45.0) * 65535.0 / 175.0 + 0.5)
    srh = int((humidity + 6.0) * 65535.0 / 125.0 + 0.5)
    return min(max(st, 0), 0xFFFF), min(max(srh, 0), 0xFFFF)


# Measurement duration per precision, in µs (table 7): (typical, maximum).
DURATION_US = {
    "high": (6900, 8300),
    "medium": (3700, 4500),
    "low": (1300, 1600),
}

# Heater pulses (table 7, 4.9): the heater runs for 1 s or 0.1 s (maximum 1.1 s / 0.11 s),
# then the chip takes a high-precision measurement and switches the heater off.
HEATER_POWERS_MW = (20, 110, 200)
HEATER_DURATIONS_MS = (100, 1000)
HEATER_MAX_MS = {100: 110, 1000: 1100}


def wait_ms(precision):
    """Whole milliseconds to wait after a measurement command: the maximum, rounded up."""
    return (DURATION_US[precision][1] + 999) // 1000
