"""Fuzzing the PMS5003 and SDS011 frame parsers (CPython only: hypothesis).

The property: whatever bytes come in, the parsers only ever hand out frames that are
really there. For random streams every frame found must pass an independent check
(written here, not the driver's) and sit in the stream, in order. For valid streams
damaged the way a UART damages them (bytes lost, noise bursts between frames, one bit
error per frame), every frame found must be one of the frames that were sent, in
order: never a wrong number. Deterministic: derandomize=True.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.pms5003 import PMS5003
from drivers.pms5003 import frames as pms_frames
from drivers.sds011 import frames as sds_frames
from hal import clock
from hal.sim.bus import SimUART
from hal.sim.environment import Environment
from hal.sim.pms5003 import SimPMS5003
from host_tests.device.pm_uart_checks import the_air_or_a_clear_error

FUZZ = settings(derandomize=True, max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- independent references -------------------------------------------------------------


def pms_valid(f):
    if len(f) != 32 or f[0] != 0x42 or f[1] != 0x4D or f[2] != 0 or f[3] != 28:
        return False
    if sum(f[:30]) & 0xFFFF != (f[30] << 8) + f[31]:
        return False
    w = [(f[4 + 2 * i] << 8) + f[5 + 2 * i] for i in range(13)]
    return w[0] <= w[1] <= w[2] and w[3] <= w[4] <= w[5] and all(w[i] >= w[i + 1] for i in range(6, 11))


def sds_valid(f, device_id=None):
    if len(f) != 10 or f[0] != 0xAA or f[1] != 0xC0 or f[9] != 0xAB:
        return False
    if sum(f[2:8]) & 0xFF != f[8]:
        return False
    return device_id is None or (f[6] << 8) + f[7] == device_id


def pms_frame(words):
    f = bytearray(b"\x42\x4d\x00\x1c")
    for w in words:
        f += bytes(((w >> 8) & 0xFF, w & 0xFF))
    s = sum(f) & 0xFFFF
    return bytes(f + bytes((s >> 8, s & 0xFF)))


def sds_frame(pm25, pm10, device_id=0xA160):
    b = bytes((pm25 & 0xFF, pm25 >> 8, pm10 & 0xFF, pm10 >> 8, device_id >> 8, device_id & 0xFF))
    return b"\xaa\xc0" + b + bytes((sum(b) & 0xFF, 0xAB))


class Collect:
    """Wraps a parser class so that every accepted data frame is kept whole."""

    def __init__(self, parser_cls, data_len, is_data):
        outer = self

        class P(parser_cls):
            def accept(self, win, length):
                super().accept(win, length)
                if length == data_len and is_data(win):
                    outer.frames.append(bytes(win[:length]))

        self.parser = P()
        self.frames = []

    def feed(self, stream, chunks):
        pos, i = 0, 0
        while pos < len(stream):
            n = chunks[i % len(chunks)] if chunks else len(stream)
            part = bytearray(stream[pos : pos + n])
            self.parser.feed(part, len(part))
            pos += n
            i += 1
        return self.frames


def pms_collect():
    return Collect(pms_frames.Parser, 32, lambda w: True)


def sds_collect(device_id=None):
    c = Collect(sds_frames.Parser, 10, lambda w: w[1] == 0xC0)
    c.parser.device_id = device_id
    return c


def is_subsequence(found, sent):
    it = iter(sent)
    return all(any(f == s for s in it) for f in found)


def in_stream_in_order(found, stream):
    pos = 0
    for f in found:
        i = stream.find(f, pos)
        if i < 0:
            return False
        pos = i + 1
    return True


# -- strategies -------------------------------------------------------------------------------


@st.composite
def pms_words(draw):
    a = sorted(draw(st.lists(st.integers(0, 1000), min_size=3, max_size=3)))
    b = sorted(draw(st.lists(st.integers(0, 1000), min_size=3, max_size=3)))
    c = sorted(draw(st.lists(st.integers(0, 65535), min_size=6, max_size=6)), reverse=True)
    return a + b + c + [draw(st.sampled_from((0, 0x9700, 0x9701)))]


chunks = st.lists(st.integers(1, 40), min_size=1, max_size=8)


@st.composite
def uart_damage(draw, frames, frame_len):
    """The frames as a UART might deliver them: some bytes lost anywhere, noise bursts
    between frames, at most one bit error per frame."""
    out = bytearray()
    for f in frames:
        f = bytearray(f)
        if draw(st.booleans()):
            out += bytes(draw(st.lists(st.integers(0, 255), max_size=40)))
        if draw(st.integers(0, 3)) == 0:
            i = draw(st.integers(0, frame_len - 1))
            f[i] ^= 1 << draw(st.integers(0, 7))
        for _ in range(draw(st.integers(0, 2))):
            if len(f) > 1 and draw(st.booleans()):
                del f[draw(st.integers(0, len(f) - 1))]
        out += f
    start = draw(st.integers(0, frame_len - 1))  # the host starts listening mid-frame
    return bytes(out[start:])


# -- PMS5003 --------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=400), chunks)
def test_pms_random_bytes_yield_only_frames_that_are_there(stream, ch):
    found = pms_collect().feed(stream, ch)
    assert all(pms_valid(f) for f in found)
    assert in_stream_in_order(found, stream)


@FUZZ
@given(st.lists(pms_words(), min_size=1, max_size=6), st.data(), chunks)
def test_pms_damaged_streams_never_yield_a_wrong_frame(words, data, ch):
    sent = [pms_frame(w) for w in words]
    stream = data.draw(uart_damage(sent, 32))
    found = pms_collect().feed(stream, ch)
    assert is_subsequence(found, sent), (found, sent)


@FUZZ
@given(st.lists(pms_words(), min_size=1, max_size=6), st.binary(max_size=60), chunks)
def test_pms_clean_frames_after_noise_are_all_found(words, noise, ch):
    sent = [pms_frame(w) for w in words]
    found = pms_collect().feed(noise + b"".join(sent), ch)
    assert found[-len(sent) :] == sent  # noise before them hides none
    assert all(pms_valid(f) for f in found)


# -- SDS011 ----------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=300), chunks)
def test_sds_random_bytes_yield_only_frames_that_are_there(stream, ch):
    found = sds_collect().feed(stream, ch)
    assert all(sds_valid(f) for f in found)
    assert in_stream_in_order(found, stream)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 9999), st.integers(0, 9999)), min_size=1, max_size=8), st.data(), chunks)
def test_sds_damaged_streams_never_yield_a_wrong_frame(values, data, ch):
    sent = [sds_frame(a, b) for a, b in values]
    stream = data.draw(uart_damage(sent, 10))
    found = sds_collect(0xA160).feed(stream, ch)
    assert is_subsequence(found, sent), (found, sent)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 9999), st.integers(0, 9999)), min_size=1, max_size=8), st.binary(max_size=40), chunks)
def test_sds_clean_frames_after_noise_are_all_found(values, noise, ch):
    sent = [sds_frame(a, b) for a, b in values]
    found = sds_collect(0xA160).feed(noise + b"".join(sent), ch)
    assert found[-len(sent) :] == sent


# -- the whole driver on the simulated sensor ---------------------------------------------------------


fault = st.one_of(
    st.tuples(st.just("garbage"), st.integers(1, 80)),
    st.tuples(st.just("drop"), st.integers(1, 2)),
    st.tuples(st.just("bad_checksum"), st.integers(1, 2)),
    st.tuples(st.just("corrupt"), st.sampled_from(("flip", "ones"))),
    st.tuples(st.just("wait"), st.integers(0, 20000)),
)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(st.sampled_from(("passive", "active")), st.lists(fault, min_size=1, max_size=12))
def test_driver_under_random_faults_returns_the_air_or_an_error(mode, faults):
    clk = clock.install(clock.VirtualClock())
    chip = SimPMS5003(Environment(pm1_0=5.0, pm2_5=8.0, pm10=12.0), noise=False)
    uart = SimUART(chip, log=False)
    clk.sleep_ms(1000)
    sensor = PMS5003(uart, mode, stale_s=None)
    clk.sleep_ms(30000)
    for kind, arg in faults:
        if kind == "wait":
            clk.sleep_ms(arg)
        elif kind == "corrupt":
            chip.faults.corrupt(1, arg)
        else:
            getattr(chip.faults, kind)(arg)
        the_air_or_a_clear_error(sensor, clk, {"pm1_0": 5, "pm2_5": 8, "pm10": 12}, (kind, arg))
