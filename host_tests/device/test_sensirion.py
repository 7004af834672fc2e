# The shared Sensirion framing (drivers/sensirion.py): CRC-8 against the datasheets'
# examples and the bitwise definition, word packing, CRC checks that name the bad word,
# and the command transport's error messages. Runs on CPython and inside MicroPython.

from errno import EIO, ENODEV

from drivers import sensirion
from drivers.sensirion import (
    SensirionI2C,
    bad_word,
    check_words,
    crc8,
    pack_command,
    pack_word,
    unpack_words,
    word,
)
from hal.sim.bus import SimI2C
from hal.sim.scd4x import SimSCD4x
from hal.sim.sensirion import crc8 as crc8_bitwise
from host_tests.device.support import heap_allocated, message, raises, virtual_clock


def _lcg(seed):
    """Deterministic bytes without the random module (same on both interpreters)."""
    state = seed
    while True:
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        yield (state >> 16) & 0xFF


# -- CRC-8 -----------------------------------------------------------------------------


def test_crc_of_the_datasheet_example_0xbeef_is_0x92():
    assert crc8(b"\xbe\xef") == 0x92
    assert crc8(bytearray(b"\x00\xbe\xef\x00"), 1, 3) == 0x92


def test_crc_of_the_scd4x_datasheet_examples():
    # read_measurement: 500 ppm, 25 °C, 37 %RH (SCD4x 3.5.2); set_temperature_offset
    # 5.4 °C (3.6.1); set_sensor_altitude 1950 m (3.6.3).
    for value, crc in ((0x01F4, 0x33), (0x6667, 0xA2), (0x5EB9, 0x3C), (0x07E6, 0x48), (0x079E, 0x09)):
        assert crc8(bytes((value >> 8, value & 0xFF))) == crc, hex(value)


def test_crc_of_the_sps30_start_measurement_argument():
    # SPS30 6.3.1: start measurement with float output is 0x00 0x10 0x03 0x00 0xAC.
    assert crc8(b"\x03\x00") == 0xAC


def test_crc_table_matches_the_bitwise_definition():
    for b in range(256):
        assert crc8(bytes((b,))) == crc8_bitwise(bytes((b,))), b
    gen = _lcg(7)
    for n in (0, 1, 2, 3, 17, 60):
        data = bytes(next(gen) for _ in range(n))
        assert crc8(data) == crc8_bitwise(data), data
    assert crc8(b"") == 0xFF  # the init value, nothing shifted in
    assert sensirion.CRC8_POLYNOMIAL == 0x31 and sensirion.CRC8_INIT == 0xFF


def test_crc_detects_every_single_bit_error_in_a_word():
    for value in (0x0000, 0x01F4, 0xBEEF, 0xFFFF):
        frame = bytearray(3)
        pack_word(value, frame, 0)
        for bit in range(16):
            frame[bit // 8] ^= 1 << (bit % 8)
            assert bad_word(frame, 1) == 0, (value, bit)
            frame[bit // 8] ^= 1 << (bit % 8)
        assert bad_word(frame, 1) == -1


# -- words ---------------------------------------------------------------------------------


def test_pack_word_writes_value_and_crc_and_returns_the_next_offset():
    buf = bytearray(8)
    end = pack_word(0xBEEF, buf, pack_command(0xE000, buf))
    assert end == 5
    assert bytes(buf[:5]) == b"\xe0\x00\xbe\xef\x92"
    assert pack_word(0, buf, end) == 8 and bytes(buf[5:]) == b"\x00\x00\x81"


def test_pack_word_refuses_values_outside_16_bits_naming_them():
    buf = bytearray(3)
    for bad in (-1, 0x10000):
        e = raises(ValueError, pack_word, bad, buf, 0)
        assert str(bad) in message(e)


def test_word_reads_the_data_of_triple_n():
    buf = bytes((0x01, 0xF4, 0x33, 0x66, 0x67, 0xA2, 0x5E, 0xB9, 0x3C))
    assert (word(buf, 0), word(buf, 1), word(buf, 2)) == (500, 0x6667, 0x5EB9)
    assert bad_word(buf, 3) == -1
    check_words(buf, 3)  # raises nothing


def test_check_words_names_the_failing_word_and_the_device():
    buf = bytearray((0x01, 0xF4, 0x33, 0x66, 0x67, 0xA2, 0x5E, 0xB9, 0x3C))
    buf[7] ^= 0x10
    assert bad_word(buf, 3) == 2
    assert bad_word(buf, 2) == -1  # only the words asked for are checked
    e = raises(EIO, check_words, buf, 3, "SCD4x at I2C address 0x62")
    text = message(e)
    assert "SCD4x at I2C address 0x62" in text and "word 2 of 3" in text, text
    assert "0x5ea9" in text and "0x3c" in text, text  # what came and what the CRC says


def test_unpack_words_strips_the_crcs_and_refuses_damage():
    buf = bytearray(9)
    o = pack_word(0x4120, buf, 0)
    o = pack_word(0x0000, buf, o)
    pack_word(0xFFFF, buf, o)
    out = bytearray(6)
    unpack_words(buf, 3, out)
    assert bytes(out) == b"\x41\x20\x00\x00\xff\xff"
    unpack_words(buf, 3, buf)  # in place: the data move to the front
    assert bytes(buf[:6]) == b"\x41\x20\x00\x00\xff\xff"
    bad = bytearray(b"\xff" * 9)  # SDA stuck high: 0xFFFF with CRC 0xFF is wrong (0xAC)
    out = bytearray(b"\x55" * 6)
    e = raises(EIO, unpack_words, bad, 3, out)
    assert "word 0 of 3" in message(e)
    assert bytes(out) == b"\x55" * 6  # nothing copied from a damaged buffer


def test_the_helpers_allocate_nothing():
    buf = bytearray(60)
    for w in range(20):
        pack_word(w * 3001, buf, 3 * w)
    out = bytearray(40)

    def work():
        crc8(buf, 0, 2)
        check_words(buf, 20)
        unpack_words(buf, 20, out)
        pack_word(0x1234, buf, 57)
        word(buf, 19)

    work()
    used = heap_allocated(work, repeat=20)
    assert used in (None, 0), "allocated %d bytes in 20 rounds" % used


# -- the command transport ------------------------------------------------------------------


class _SoftI2C:
    """Like machine.SoftI2C: a NACKed data byte ends the write, which returns the number of
    data bytes ACKed instead of raising."""

    def __init__(self, acks):
        self.acks = acks
        self.writes = []

    def writeto(self, addr, buf):
        self.writes.append(bytes(buf))
        return self.acks

    def readfrom_into(self, addr, buf):
        for i in range(len(buf)):
            buf[i] = 0


def test_transport_names_address_and_command_on_a_bus_error():
    virtual_clock()
    dev = SensirionI2C(SimI2C(), 0x62, "SCD4x")
    e = raises(ENODEV, dev.send, 0x3F86)
    text = message(e)
    assert "SCD4x at I2C address 0x62" in text and "0x3f86" in text, text


def test_transport_sees_a_nack_reported_as_a_short_ack_count():
    virtual_clock()
    soft = _SoftI2C(2)  # the command's two bytes ACKed, the argument's first NACKed
    dev = SensirionI2C(soft, 0x69, "SPS30")
    e = raises(EIO, dev.write, 0x0010, 0x0300)
    assert "not acknowledged at byte 2 of 5" in message(e) and "0x0010" in message(e), message(e)
    assert soft.writes == [b"\x00\x10\x03\x00\xac"]
    raises(EIO, SensirionI2C(_SoftI2C(0), 0x69, "SPS30").send, 0x0104)
    SensirionI2C(_SoftI2C(2), 0x69, "SPS30").send(0x0104)  # both data bytes ACKed: fine
    SensirionI2C(_SoftI2C(3), 0x69, "SPS30").send(0x0104)  # SimI2C counts the address too


def test_transport_crc_error_names_the_command_and_word():
    clk = virtual_clock()
    i2c = SimI2C()
    chip = i2c.attach(SimSCD4x(), 0x62)
    clk.sleep_ms(1000)
    dev = SensirionI2C(i2c, 0x62, "SCD4x")
    buf = bytearray(9)
    dev.read_into(0x3682, buf, 1)
    assert (word(buf, 0), word(buf, 1), word(buf, 2)) == (0x0C7A, 0x4F6E, 0x3B21)
    chip.faults.corrupt(1, "flip")
    e = raises(EIO, dev.read_into, 0x3682, buf, 1)
    text = message(e)
    assert "reply to command 0x3682" in text and "word 0 of 3" in text and "0x62" in text, text


def test_transport_writes_two_argument_words():
    soft = _SoftI2C(9)
    SensirionI2C(soft, 0x69, "SPS30").write(0x8004, 0x0009, 0, 0x3A80)  # 604800 s
    frame = b"\x80\x04\x00\x09" + bytes((crc8(b"\x00\x09"),)) + b"\x3a\x80" + bytes((crc8(b"\x3a\x80"),))
    assert soft.writes == [frame]
