# SPS30 data conversion (SPS30 datasheet section 6: "Read Measured Values", "Read Product
# Type", "Read Version"): pure functions on the data bytes with the CRCs already stripped
# (drivers.sensirion.unpack_words).

import struct

# The ten values of "read measured values" in the order the chip sends them.
FIELDS = (
    "pm1_0",  # mass concentration PM1.0, µg/m³
    "pm2_5",  # PM2.5, µg/m³
    "pm4_0",  # PM4.0, µg/m³
    "pm10",  # PM10, µg/m³
    "nc0_5",  # number concentration PM0.5, #/cm³
    "nc1_0",  # PM1.0, #/cm³
    "nc2_5",  # PM2.5, #/cm³
    "nc4_0",  # PM4.0, #/cm³
    "nc10",  # PM10, #/cm³
    "typical_particle_size",  # µm
)

PRODUCT_TYPE = "00080000"  # what every SPS30 answers to "read product type"

# Device status register bits (4.4).
STATUS_FAN_SPEED_WARNING = 1 << 21
STATUS_FAN_CLEANING = 1 << 19
STATUS_LASER_ERROR = 1 << 5
STATUS_FAN_ERROR = 1 << 4


def float_at(data, index):
    """Value number `index` of the float output: a big-endian IEEE754 single in
    data[4*index : 4*index + 4] (two words, most significant first)."""
    return struct.unpack_from(">f", data, 4 * index)[0]


def float_from_words(msw, lsw):
    """The IEEE754 single made of two 16-bit words (0x4120, 0x0000 is 10.0)."""
    return struct.unpack(">f", struct.pack(">HH", msw, lsw))[0]


def ascii_string(data):
    """A NUL-terminated ASCII string (product type, serial number) from the data bytes."""
    end = 0
    while end < len(data) and data[end]:
        end += 1
    return bytes(data[:end]).decode()


def firmware_version(word):
    """(major, minor) from "read version": the first byte is the major version."""
    return word >> 8, word & 0xFF


def status_problems(status):
    """The device status register's warnings and errors as words, for error messages."""
    names = []
    if status & STATUS_FAN_SPEED_WARNING:
        names.append("fan speed out of range")
    if status & STATUS_LASER_ERROR:
        names.append("laser current out of range")
    if status & STATUS_FAN_ERROR:
        names.append("fan switched on but not running")
    return names
