"""Property tests of the BME280 compensation over the calibration space (hypothesis):
the datasheet's integer formulas (drivers/bme280/compensation.py) against its
double-precision formulas (hal/sim/bme280.py, section 8.1), and the integer results
bit-identical on CPython and inside the real MicroPython interpreter."""

import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.bme280 import compensation as comp
from hal.sim.bme280 import float_humidity, float_pressure_pa, float_t_fine, raw_for
from streetnode.common import mpy

# Calibration words of real parts vary within these ranges (trimmed per chip at the
# factory); the types are the datasheet's (table 16: T1/P1 unsigned, H4/H5 12-bit).
calibrations = st.tuples(
    st.integers(26000, 30000), st.integers(25000, 28000), st.integers(-1000, 100),
    st.integers(35000, 39000), st.integers(-11500, -10000), st.integers(2500, 4000),
    st.integers(2000, 9000), st.integers(-200, 200), st.integers(-10, 0),
    st.integers(9000, 16000), st.integers(-15000, -10000), st.integers(4000, 7000),
    st.integers(0, 100), st.integers(300, 400), st.integers(0, 10),
    st.integers(250, 400), st.integers(0, 100), st.integers(20, 40),
)  # fmt: skip
conditions = st.tuples(
    st.floats(-40.0, 85.0), st.floats(300.0, 1100.0), st.floats(0.0, 100.0)
)

SETTINGS = settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _integer(cal, adc_t, adc_p, adc_h):
    tf = comp.t_fine(cal, adc_t)
    return (
        comp.temperature_centi(tf),
        comp.pressure_q24_8(cal, tf, adc_p),
        comp.pressure_pa_32(cal, tf, adc_p),
        comp.humidity_q22_10(cal, tf, adc_h),
    )


@SETTINGS
@given(calibrations, conditions)
def test_integer_formulas_agree_with_the_double_precision_ones(cal, cond):
    adc_t, adc_p, adc_h = raw_for(cal, *cond)
    centi, q24_8, pa32, q22_10 = _integer(cal, adc_t, adc_p, adc_h)
    tf = float_t_fine(cal, adc_t)
    # Temperature: the integer result is t_fine/5120 rounded to 0.01 °C (0.005), from a
    # t_fine that drops the ADC's low bits (adc_T>>3, >>4) and floors two terms: within
    # the output's own resolution of 0.01 °C.
    assert abs(centi / 100 - tf / 5120) <= 0.01
    # Pressure: both start from the same integer t_fine. The two formulas round at
    # different steps and part by up to a few tenths of a Pa at the low end of the range;
    # 0.5 Pa is under the sensor's own noise (1.3 Pa RMS at x1 oversampling, table 3).
    p = float_pressure_pa(cal, int(tf), adc_p)
    assert abs(q24_8 / 256 - p) <= 0.5, (q24_8 / 256, p)
    # The 32-bit formula is documented as coarser: within a few Pa.
    assert abs(pa32 - p) <= 8, (pa32, p)
    # Humidity: Q22.10 is 1/1024 %RH; the ADC resolution is 0.008 %RH (table 2).
    h = float_humidity(cal, int(tf), adc_h)
    assert abs(q22_10 / 1024 - h) <= 0.02, (q22_10 / 1024, h)


@SETTINGS
@given(calibrations, st.integers(0x30000, 0xC0000), st.integers(0x30000, 0xC0000))
def test_temperature_rises_and_pressure_falls_with_the_adc(cal, adc_t, adc_p):
    tf1, tf2 = comp.t_fine(cal, adc_t), comp.t_fine(cal, adc_t + 16)
    assert tf2 >= tf1
    tf = comp.t_fine(cal, 0x7E000)
    assert comp.pressure_q24_8(cal, tf, adc_p + 16) <= comp.pressure_q24_8(cal, tf, adc_p)


def test_micropython_computes_the_same_integers():
    """MicroPython's ints are arbitrary precision like CPython's, but its shifts of negative
    numbers and big-int paths are its own code: over the whole space of calibration words
    (not only realistic ones), every result must be identical."""
    rng = random.Random(2808)
    cases = []
    for _ in range(2000):
        cal = [rng.randint(-32768, 32767) for _ in range(18)]
        cal[comp.T1], cal[comp.P1] = rng.randint(1, 65535), rng.randint(1, 65535)
        cal[comp.H1], cal[comp.H3] = rng.randint(0, 255), rng.randint(0, 255)
        cal[comp.H4], cal[comp.H5], cal[comp.H6] = rng.randint(-2048, 2047), rng.randint(-2048, 2047), rng.randint(-128, 127)
        cases.append((cal, rng.randint(0, 0xFFFFF), rng.randint(0, 0xFFFFF), rng.randint(0, 0xFFFF)))
    expected = [list(_integer(*case)) for case in cases]
    code = (
        "import sys, json\n"
        "from drivers.bme280 import compensation as c\n"
        "out = []\n"
        "for cal, t, p, h in json.loads(sys.stdin.read()):\n"
        "    tf = c.t_fine(cal, t)\n"
        "    out.append([c.temperature_centi(tf), c.pressure_q24_8(cal, tf, p), c.pressure_pa_32(cal, tf, p), c.humidity_q22_10(cal, tf, h)])\n"
        "print(json.dumps(out))\n"
    )
    proc = mpy.run_code(code, input=json.dumps(cases), capture=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == expected


@SETTINGS
@given(calibrations, conditions, st.tuples(st.integers(-3000, 3000), st.integers(-3000, 3000), st.integers(-3000, 3000)))
def test_the_model_finds_the_same_raw_values_from_any_earlier_answer(cal, cond, shift):
    # The simulated chip searches from its last answer (air changes little between
    # conversions); wherever it starts it must land where a full search lands.
    exact = raw_for(cal, *cond)
    guess = tuple(max(0, v + d) for v, d in zip(exact, shift))
    assert raw_for(cal, *cond, guess=guess) == exact
