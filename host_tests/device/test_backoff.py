# The one backoff policy (firmware/backoff.py) of the broker (firmware/mqtt.py), the WLAN
# and NTP (firmware/net.py): exponential envelope, full jitter, cap, and the seedable
# random source that gives the same delays on MicroPython and CPython.
# Pure functions: runs on both interpreters.

from firmware import mqtt, net
from firmware.backoff import Jitter, backoff_ms
from host_tests.device.support import raises

RAW_12345 = [1255823138, 134017181, 2752287018]


def test_envelope_doubles_from_base_to_cap():
    # u just below 1 shows the envelope itself (minus the 1 ms lost to int()).
    u = 0.999999
    got = [backoff_ms(k, u, 1000, 60000) for k in range(9)]
    assert got == [999, 1999, 3999, 7999, 15999, 31999, 59999, 59999, 59999]


def test_full_jitter_spans_zero_to_envelope():
    assert backoff_ms(0, 0.0, 1000, 60000) == 0
    assert backoff_ms(3, 0.5, 1000, 60000) == 4000
    assert backoff_ms(10, 0.25, 1000, 60000) == 15000  # capped envelope 60 s


def test_cap_holds_for_any_attempt_without_big_numbers():
    # A node that has been offline for a week: attempt in the thousands, still the cap.
    assert backoff_ms(5000, 0.999999, 1000, 60000) == 59999
    assert backoff_ms(31, 0.5, 1, 8) == 4


def test_cap_below_an_uneven_doubling():
    assert backoff_ms(2, 0.999999, 100, 300) == 299  # 100, 200, then 300 (not 400)


def test_bad_arguments_name_the_value():
    e = raises(ValueError, backoff_ms, -1, 0.5)
    assert "-1" in str(e)
    raises(ValueError, backoff_ms, 0, 1.0)
    raises(ValueError, backoff_ms, 0, -0.1)
    raises(ValueError, backoff_ms, 0, 0.5, 0, 100)
    raises(ValueError, backoff_ms, 0, 0.5, 1000, 999)


def test_jitter_is_seeded_and_identical_on_every_interpreter():
    j = Jitter(12345)
    got = [backoff_ms(k, j.random(), 1000, 60000) for k in range(10)]
    # The numbers CPython gives; MicroPython must give the very same.
    assert got == [292, 62, 2563, 7595, 11455, 29657, 8560, 35702, 11878, 20717]
    again = Jitter(12345)
    # The raw 32-bit states (exact integers: no float parsing differences between interpreters).
    assert [int(again.random() * 4294967296) for _ in range(3)] == RAW_12345


def test_jitter_range_and_spread():
    j = Jitter(2024)
    xs = [j.random() for _ in range(2000)]
    assert min(xs) >= 0 and max(xs) < 1
    buckets = [0] * 10
    for x in xs:
        buckets[int(x * 10)] += 1
    assert min(buckets) > 150 and max(buckets) < 250  # roughly uniform: 200 each


def test_different_seeds_give_different_schedules():
    a, b = Jitter(1), Jitter(2)
    assert [a.random() for _ in range(5)] != [b.random() for _ in range(5)]


def test_zero_seed_is_not_stuck():
    j = Jitter(0)
    xs = [j.random() for _ in range(5)]
    assert len(set(xs)) == 5 and all(0 <= x < 1 for x in xs)


def test_a_city_restarting_spreads_out():
    # 500 nodes lose the broker at once: their first attempts spread over [0, base),
    # not all in the same instant.
    firsts = [backoff_ms(0, Jitter(1000 + n).random(), 1000, 60000) for n in range(500)]
    per_100ms = [0] * 10
    for d in firsts:
        per_100ms[d // 100] += 1
    assert max(per_100ms) < 500 // 10 * 2  # no window gets more than twice its share


def test_one_policy_for_broker_wlan_and_ntp():
    # The link and the radio (WLAN and NTP retries) use these very functions.
    assert mqtt.backoff_ms is backoff_ms and mqtt.Jitter is Jitter
    assert net.backoff_ms is backoff_ms and net.Jitter is Jitter


def test_the_wlan_backoff_grows_jittered_and_resets():
    from hal.sim.wlan import SimNetwork, SimNTP, SimWLAN
    from host_tests.device.support import virtual_clock

    virtual_clock(0)
    radio = SimWLAN(faults=[{"kind": "wlan_down", "for_s": 600}], assoc_ms=100, dhcp_ms=0)
    n = net.Net({"ssid": "x", "password": ""}, "", network=SimNetwork(radio), ntptime=SimNTP(radio), seed=99)
    from hal import clock

    delays = []
    while len(delays) < 10:
        n.ensure()
        if n.retry_ms() is not None and (not delays or n.failures > len(delays)):
            delays.append(n.retry_ms())
        clock.sleep_ms(50)
    envelopes = [2000, 4000, 8000, 16000, 32000, 64000, 120000, 120000, 120000, 120000]
    assert all(0 <= d < e for d, e in zip(delays, envelopes)), delays
    assert max(delays[6:]) > 16000  # the envelope did grow
    seq = Jitter(99)
    assert delays[:3] == [backoff_ms(k, seq.random(), 2000, 120000) for k in range(3)]
    while not n.up():
        clock.sleep_ms(1000)
        n.ensure()
    assert n.failures == 0  # reset by the association
