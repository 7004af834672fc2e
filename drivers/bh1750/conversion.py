# BH1750FVI counts to lux and measurement times: pure functions (ROHM BH1750FVI
# technical note, 2009.04 rev. B: "Electrical Characteristics" p. 2, "Instruction Set
# Architecture", "Adjust measurement result for influence of optical window" (the MTreg),
# "I2C Bus Access" p. 10 with its worked example 0x8390 -> 28067 lx).

MTREG_DEFAULT = 69  # measurement time register at power-up ("optical window" section)
MTREG_MIN = 31
MTREG_MAX = 254
COUNTS_PER_LX = 1.2  # "measurement accuracy" S/A, typical (p. 2): sensor out / actual lx

# Measurement time at MTreg 69 in ms (p. 2): (typical, maximum). The time scales with
# MTreg: the chip integrates longer for more sensitivity ("optical window" section).
TIME_MS = {"high": (120, 180), "high2": (120, 180), "low": (16, 24)}


def lux(raw, mtreg=MTREG_DEFAULT, resolution="high"):
    """Illuminance in lx from the 16-bit count: raw / 1.2 * (69 / MTreg), halved in
    H-resolution mode 2 whose count has a 0.5 lx step (instruction set, optical window)."""
    lx = raw / COUNTS_PER_LX * MTREG_DEFAULT / mtreg
    return lx / 2 if resolution == "high2" else lx


def lux_step(mtreg=MTREG_DEFAULT, resolution="high"):
    """The illuminance of one count, in lx: 0.83 at MTreg 69 in H-resolution mode,
    0.11 at MTreg 254 in H-resolution mode 2 (the datasheet's 0.11 lx minimum)."""
    return lux(1, mtreg, resolution)


def wait_ms(resolution, mtreg=MTREG_DEFAULT):
    """The maximum measurement time scaled by MTreg, rounded up to whole ms
    (180 ms at MTreg 69 in H-resolution, 24 ms in L-resolution)."""
    mx = TIME_MS[resolution][1]
    return (mx * mtreg + MTREG_DEFAULT - 1) // MTREG_DEFAULT


def mtreg_opcodes(mtreg):
    """The two one-byte instructions that set MTreg (instruction set): 01000_MT[7:5]
    and 011_MT[4:0]."""
    return 0x40 | (mtreg >> 5), 0x60 | (mtreg & 0x1F)
