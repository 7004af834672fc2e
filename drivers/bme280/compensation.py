# BME280/BMP280 compensation: the integer formulas of BST-BME280-DS002 section 4.2.3
# (and BST-BMP280-DS001 section 3.11.3), as pure functions on plain ints.
#
# `cal` is the tuple made by parse_calibration():
#   (T1, T2, T3, P1, P2, P3, P4, P5, P6, P7, P8, P9, H1, H2, H3, H4, H5, H6)
# C's signed >> is arithmetic on every compiler Bosch supports, like Python's >>;
# C's integer division truncates toward zero, so it goes through _cdiv.

import struct

T1, T2, T3, P1, P2, P3, P4, P5, P6, P7, P8, P9, H1, H2, H3, H4, H5, H6 = range(18)

# The skipped-channel value: the ADC register reads 0x80000 (0x8000 for humidity)
# when oversampling is 0 or no conversion has run since reset.
ADC_SKIPPED_20 = 0x80000
ADC_SKIPPED_16 = 0x8000


def _cdiv(a, b):
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _cdiv_scaled(n, k, d):
    """_cdiv(n * k, d) for k > 0 without forming n * k: from n = q * d + r,
    n * k // d = q * k + r * k // d (on magnitudes; the sign as C's division gives it)."""
    an = n if n >= 0 else -n
    ad = d if d >= 0 else -d
    q = (an // ad) * k + ((an % ad) * k) // ad
    return q if (n < 0) == (d < 0) else -q


def _s8(v):
    return v - 256 if v > 127 else v


def parse_calibration(tp, h=None):
    """Calibration tuple from the NVM: `tp` the 26 bytes 0x88..0xA1, `h` the 7 bytes
    0xE1..0xE7 (None on a BMP280: humidity coefficients are 0)."""
    cal = struct.unpack("<HhhHhhhhhhhh", tp[:24])
    if h is None:
        return cal + (0, 0, 0, 0, 0, 0)
    h1 = tp[25]
    h2, h3 = struct.unpack("<hB", h[:3])
    # dig_H4/H5 are 12-bit: the upper byte is signed (Bosch BME280_driver, bme280.c)
    h4 = (_s8(h[3]) << 4) | (h[4] & 0x0F)
    h5 = (_s8(h[5]) << 4) | (h[4] >> 4)
    h6 = _s8(h[6])
    return cal + (h1, h2, h3, h4, h5, h6)


def t_fine(cal, adc_t):
    """The shared fine temperature (BME280_compensate_T_int32's t_fine)."""
    t1 = cal[T1]
    var1 = (((adc_t >> 3) - (t1 << 1)) * cal[T2]) >> 11
    d = (adc_t >> 4) - t1
    var2 = (((d * d) >> 12) * cal[T3]) >> 14
    return var1 + var2


def temperature_centi(tfine):
    """Temperature in 0.01 °C from t_fine (5123 means 51.23 °C)."""
    return (tfine * 5 + 128) >> 8


def pressure_q24_8(cal, tfine, adc_p):
    """Pressure in Pa as Q24.8 (24674867 means 96386.2 Pa): the 64-bit formula.

    Two of its products pass 2**62, where MicroPython's small ints end on a 64-bit port
    (2**30 on a board): ((1 << 47) + var1) * P1 and (p << 31 - var2) * 3125. Both are
    computed here in exact pieces that stay small, so a reading allocates no big ints
    (128 bytes a reading on the 64-bit unix port before)."""
    var1 = tfine - 128000
    var2 = var1 * var1 * cal[P6]
    var2 = var2 + ((var1 * cal[P5]) << 17)
    var2 = var2 + (cal[P4] << 35)
    var1 = ((var1 * var1 * cal[P3]) >> 8) + ((var1 * cal[P2]) << 12)
    # (a * P1) >> 33 with a = (1 << 47) + var1 split at bit 16: floor((x * 2**16 + y) / 2**33)
    # equals (x + (y >> 16)) >> 17 for integers x and y >= 0.
    a = (1 << 47) + var1
    p1 = cal[P1]
    var1 = (((a >> 16) * p1) + (((a & 0xFFFF) * p1) >> 16)) >> 17
    if var1 == 0:
        return 0  # the datasheet's guard against division by zero
    p = 1048576 - adc_p
    p = _cdiv_scaled((p << 31) - var2, 3125, var1)
    var1 = (cal[P9] * (p >> 13) * (p >> 13)) >> 25
    var2 = (cal[P8] * p) >> 19
    return ((p + var1 + var2) >> 8) + (cal[P7] << 4)


def pressure_pa_32(cal, tfine, adc_p):
    """Pressure in whole Pa: the 32-bit formula, for boards that must avoid big ints."""
    var1 = (tfine >> 1) - 64000
    var2 = (((var1 >> 2) * (var1 >> 2)) >> 11) * cal[P6]
    var2 = var2 + ((var1 * cal[P5]) << 1)
    var2 = (var2 >> 2) + (cal[P4] << 16)
    var1 = (((cal[P3] * (((var1 >> 2) * (var1 >> 2)) >> 13)) >> 3) + ((cal[P2] * var1) >> 1)) >> 18
    var1 = ((32768 + var1) * cal[P1]) >> 15
    if var1 == 0:
        return 0
    p = (((1048576 - adc_p) - (var2 >> 12)) * 3125) & 0xFFFFFFFF  # BME280_U32_t
    if p < 0x80000000:
        p = (p << 1) // var1
    else:
        p = (p // var1) * 2
    var1 = (cal[P9] * ((((p >> 3) * (p >> 3)) >> 13))) >> 12
    var2 = ((p >> 2) * cal[P8]) >> 13
    return p + ((var1 + var2 + cal[P7]) >> 4)


def humidity_q22_10(cal, tfine, adc_h):
    """Relative humidity in %RH as Q22.10 (47445 means 46.333 %RH)."""
    v = tfine - 76800
    v = ((((adc_h << 14) - (cal[H4] << 20) - (cal[H5] * v)) + 16384) >> 15) * (
        ((((((v * cal[H6]) >> 10) * (((v * cal[H3]) >> 11) + 32768)) >> 10) + 2097152) * cal[H2] + 8192) >> 14
    )
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * cal[H1]) >> 4)
    if v < 0:
        v = 0
    elif v > 419430400:
        v = 419430400
    return v >> 12


def unpack_adc(buf, offset=0):
    """(adc_p, adc_t, adc_h) from the data registers 0xF7..0xFE starting at buf[offset]."""
    o = offset
    adc_p = (buf[o] << 12) | (buf[o + 1] << 4) | (buf[o + 2] >> 4)
    adc_t = (buf[o + 3] << 12) | (buf[o + 4] << 4) | (buf[o + 5] >> 4)
    adc_h = (buf[o + 6] << 8) | buf[o + 7]
    return adc_p, adc_t, adc_h


def measurement_time_max_us(osrs_t, osrs_p, osrs_h):
    """Maximum duration of one forced measurement in µs (datasheet appendix B, 9.1):
    1.25 ms + 2.3 ms per temperature sample + 2.3 ms per pressure and per humidity
    sample plus 0.575 ms each; a skipped channel (oversampling 0) costs nothing."""
    us = 1250 + 2300 * osrs_t
    if osrs_p:
        us += 2300 * osrs_p + 575
    if osrs_h:
        us += 2300 * osrs_h + 575
    return us


def measurement_time_typ_us(osrs_t, osrs_p, osrs_h):
    """Typical duration in µs: 1 ms + 2 ms per sample + 0.5 ms per enabled P/H channel."""
    us = 1000 + 2000 * osrs_t
    if osrs_p:
        us += 2000 * osrs_p + 500
    if osrs_h:
        us += 2000 * osrs_h + 500
    return us
