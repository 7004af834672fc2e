"""drivers/pm_correction.py: the humidity corrections, with hand-worked numbers, on
CPython and (the same calls) inside MicroPython."""

import json

import pytest

from drivers import pm_correction as pc
from streetnode.common import mpy


def test_kappa_koehler_factor_by_hand():
    # C = 1 + (kappa / 1.65) / (1 / a_w - 1)
    assert pc.kappa_koehler_factor(0.0) == 1.0
    assert pc.kappa_koehler_factor(50.0, kappa=0.3) == pytest.approx(1 + (0.3 / 1.65) / 1.0)
    assert pc.kappa_koehler_factor(90.0, kappa=0.3) == pytest.approx(1 + (0.3 / 1.65) / (1 / 0.9 - 1))
    assert pc.kappa_koehler_factor(90.0, kappa=0.3) == pytest.approx(2.636364, rel=1e-6)
    assert pc.kappa_koehler_factor(80.0, kappa=0.0) == 1.0  # soot and dust take up no water


def test_factor_is_the_mass_growth_of_kappa_koehler():
    # Petters & Kreidenweis: (D_wet/D_dry)^3 = 1 + kappa a_w / (1 - a_w); the water's mass
    # over the dry particle's is that volume growth minus 1 times rho_w / rho_p.
    for rh in (10.0, 40.0, 70.0, 85.0, 95.0):
        for kappa in (0.1, 0.3, 0.61):
            a = rh / 100
            volume_growth = 1 + kappa * a / (1 - a)
            mass_growth = 1 + (volume_growth - 1) * 1.0 / 1.65
            assert pc.kappa_koehler_factor(rh, kappa) == pytest.approx(mass_growth)


def test_factor_grows_with_humidity_and_hygroscopicity_and_stops_near_saturation():
    values = [pc.kappa_koehler_factor(rh) for rh in range(0, 96, 5)]
    assert values == sorted(values) and values[0] == 1.0
    assert pc.kappa_koehler_factor(90.0, 0.6) > pc.kappa_koehler_factor(90.0, 0.3)
    assert pc.kappa_koehler_factor(95.0) is not None
    assert pc.kappa_koehler_factor(95.1) is None
    assert pc.kappa_koehler_factor(99.0, rh_max=99.5) is not None
    assert pc.kappa_koehler_factor(None) is None


def test_full_saturation_is_never_a_division_by_zero():
    assert pc.kappa_koehler_factor(100.0, rh_max=100.0) is None


def test_correct_divides_and_passes_none_through():
    assert pc.kappa_koehler_correct(26.4, 90.0, kappa=0.3) == pytest.approx(26.4 / 2.636364, rel=1e-6)
    assert pc.kappa_koehler_correct(10.0, 0.0) == 10.0
    assert pc.kappa_koehler_correct(None, 50.0) is None
    assert pc.kappa_koehler_correct(10.0, None) is None
    assert pc.kappa_koehler_correct(10.0, 97.0) is None


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="120"):
        pc.kappa_koehler_factor(120.0)
    with pytest.raises(ValueError, match="-0.1"):
        pc.kappa_koehler_factor(50.0, kappa=-0.1)
    with pytest.raises(ValueError, match="-5"):
        pc.epa_purpleair_pm25(10, -5)


def test_epa_purpleair_by_hand():
    # 0.524 * 20 - 0.0862 * 50 + 5.75 = 10.48 - 4.31 + 5.75
    assert pc.epa_purpleair_pm25(20, 50) == pytest.approx(11.92)
    assert pc.epa_purpleair_pm25(0, 100) == 0.0  # -2.87 clamped: no negative mass
    assert pc.epa_purpleair_pm25(None, 50) is None


def test_corrected_values_go_next_to_the_raw_ones():
    raw = {"pm1_0": None, "pm2_5": 8.3, "pm10": 12.1}
    out = pc.corrected(raw, 90.0, kappa=0.3)
    assert raw == {"pm1_0": None, "pm2_5": 8.3, "pm10": 12.1}  # untouched
    assert out["pm2_5"] == 8.3 and out["pm10"] == 12.1 and out["pm1_0"] is None
    assert out["pm1_0_rh_corrected"] is None
    assert out["pm2_5_rh_corrected"] == pytest.approx(8.3 / 2.636364, rel=1e-6)
    assert out["pm10_rh_corrected"] == pytest.approx(12.1 / 2.636364, rel=1e-6)
    assert pc.corrected(raw, 99.0)["pm2_5_rh_corrected"] is None


def test_the_same_numbers_on_micropython():
    code = (
        "import json\n"
        "from drivers import pm_correction as pc\n"
        "print(json.dumps([pc.kappa_koehler_factor(90.0, 0.3), pc.kappa_koehler_correct(26.4, 75.0),"
        " pc.epa_purpleair_pm25(20, 50), pc.kappa_koehler_factor(96.0),"
        " pc.corrected({'pm2_5': 8.3, 'pm1_0': None}, 60.0)['pm2_5_rh_corrected']]))\n"
    )
    proc = mpy.run_code(code, capture=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    want = [
        pc.kappa_koehler_factor(90.0, 0.3),
        pc.kappa_koehler_correct(26.4, 75.0),
        pc.epa_purpleair_pm25(20, 50),
        None,
        pc.corrected({"pm2_5": 8.3, "pm1_0": None}, 60.0)["pm2_5_rh_corrected"],
    ]
    assert got[3] is None
    for g, w in zip(got[:3] + got[4:], want[:3] + want[4:]):
        assert g == pytest.approx(w, rel=1e-9)
