# Humidity corrections for optical particulate-matter sensors (PMS5003, SDS011, ...),
# for the publishing side: pure functions, published NEXT TO the raw value (e.g. as
# "pm2_5_rh_corrected"), never instead of it, so that the raw series stays comparable
# and any correction can be redone later with better parameters.
#
# Why: optical sensors count particles that took up water. Above ~70 %RH hygroscopic
# particles grow and the sensor reports more mass than a dried reference (TEOM-FDMS,
# gravimetric) would weigh.
#
# 1. kappa_koehler_* — the growth-factor form of kappa-Koehler theory (Petters and
#    Kreidenweis, Atmos. Chem. Phys. 7, 1961-1971, 2007, doi:10.5194/acp-7-1961-2007),
#    as a bulk mass correction for low-cost optical sensors in Crilley et al., Atmos.
#    Meas. Tech. 11, 709-720, 2018, doi:10.5194/amt-11-709-2018 (and its composition
#    dependence in Crilley et al., doi:10.5194/amt-13-1181-2020); Di Antonio et al., Sensors
#    18(9), 2790, 2018, doi:10.3390/s18092790 apply the same theory per size bin.
#
#        C  = 1 + (kappa / rho_p) / (1 / a_w - 1),   a_w = RH / 100
#        PM_corrected = PM_raw / C
#
#    kappa: bulk hygroscopicity of the aerosol (0 for soot or dust, ~0.6 for ammonium
#    sulfate); about 0.3 is typical of continental aerosol, and it is best fitted for
#    the site against a reference station. rho_p = 1.65: the dry particle density
#    (g/cm³, relative to water) of Crilley et al. 2018. a_w = RH/100 neglects the
#    Kelvin (curvature) term, fair for the > 0.3 µm particles these sensors see. C grows
#    without bound towards 100 %RH, where fog droplets are counted too: above rh_max
#    (default 95 %RH) no corrected value is given (None).
#
# 2. epa_purpleair_pm25 — the US-wide correction for PurpleAir sensors (two PMS5003s) of
#    Barkjohn, Gantt and Clements, Atmos. Meas. Tech. 14, 4617-4637, 2021,
#    doi:10.5194/amt-14-4617-2021:
#
#        PM2.5 = 0.524 * PM2.5_cf1 - 0.0862 * RH + 5.75
#
#    Its input is the PMS5003's CF=1 PM2.5 (PMS5003.values_cf1()), not the
#    atmospheric-environment value read() returns. It was fitted on 24-hour data from
#    US sites; the piecewise extension used for smoke-level concentrations (AirNow Fire
#    and Smoke Map) is not implemented here.
#
# The functions take floats and return a float or None; None in, None out.

KAPPA_CONTINENTAL = 0.3
RHO_P = 1.65
RH_MAX = 95.0


def _check_rh(rh):
    if not 0.0 <= rh <= 100.0:
        raise ValueError("relative humidity must be 0..100 %%RH, not %r" % (rh,))


def kappa_koehler_factor(rh, kappa=KAPPA_CONTINENTAL, rho_p=RHO_P, rh_max=RH_MAX):
    """Mass growth factor C >= 1 of particles with hygroscopicity kappa at rh %RH;
    None above rh_max (near saturation the correction diverges)."""
    if rh is None:
        return None
    _check_rh(rh)
    if kappa < 0 or rho_p <= 0:
        raise ValueError("kappa must be >= 0 and rho_p > 0, not %r, %r" % (kappa, rho_p))
    if rh > rh_max or rh >= 100.0:
        return None  # at saturation the growth is unbounded (and fog is counted too)
    a_w = rh / 100.0
    if a_w <= 0.0:
        return 1.0
    return 1.0 + (kappa / rho_p) / (1.0 / a_w - 1.0)


def kappa_koehler_correct(pm, rh, kappa=KAPPA_CONTINENTAL, rho_p=RHO_P, rh_max=RH_MAX):
    """pm (µg/m³) at rh %RH as a dried reference would weigh it: pm / C; None if pm or
    rh is None or rh > rh_max."""
    if pm is None:
        return None
    c = kappa_koehler_factor(rh, kappa, rho_p, rh_max)
    if c is None:
        return None
    return pm / c


def epa_purpleair_pm25(pm25_cf1, rh):
    """Barkjohn et al. 2021 for a PMS5003's CF=1 PM2.5 (µg/m³) at rh %RH; never below 0."""
    if pm25_cf1 is None or rh is None:
        return None
    _check_rh(rh)
    return max(0.0, 0.524 * pm25_cf1 - 0.0862 * rh + 5.75)


def corrected(values, rh, kappa=KAPPA_CONTINENTAL, rho_p=RHO_P, rh_max=RH_MAX, suffix="_rh_corrected"):
    """For publishing: a new dict with the raw values of a PM reading (the contract's
    pm1_0/pm2_5/pm10) and, next to each, the kappa-Koehler corrected one under
    name + suffix. The raw values are never changed."""
    out = dict(values)
    for name in ("pm1_0", "pm2_5", "pm10"):
        if name in values:
            out[name + suffix] = kappa_koehler_correct(values[name], rh, kappa, rho_p, rh_max)
    return out
