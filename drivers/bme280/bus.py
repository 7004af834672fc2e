# Register access to a BME280 over I2C or SPI: the only bus-specific part of the driver.
# Both classes preallocate their scratch bytes, so a register read or write allocates
# nothing (readfrom_mem_into/readinto fill the caller's buffer).


class I2CRegisters:
    def __init__(self, i2c, address):
        self.i2c = i2c
        self.address = address
        self._one = bytearray(1)

    def read_into(self, reg, buf):
        self.i2c.readfrom_mem_into(self.address, reg, buf)

    def write(self, reg, value):
        self._one[0] = value
        self.i2c.writeto_mem(self.address, reg, self._one)

    def where(self):
        return "I2C address 0x%02x" % self.address


class SPIRegisters:
    """4-wire SPI, mode 0 or 3 (datasheet 6.3): the control byte's bit 7 is 1 for a read,
    0 for a write; reads auto-increment, writes are (address & 0x7F, data) pairs."""

    def __init__(self, spi, cs):
        self.spi = spi
        self.cs = cs
        self._cmd = bytearray(1)
        self._pair = bytearray(2)
        cs.value(1)

    def read_into(self, reg, buf):
        self._cmd[0] = reg | 0x80
        self.cs.value(0)
        try:
            self.spi.write(self._cmd)
            self.spi.readinto(buf, 0)
        finally:
            self.cs.value(1)

    def write(self, reg, value):
        self._pair[0] = reg & 0x7F
        self._pair[1] = value
        self.cs.value(0)
        try:
            self.spi.write(self._pair)
        finally:
            self.cs.value(1)

    def where(self):
        return "SPI chip select %r" % (self.cs,)


def registers_for(bus, address):
    """The register access for `bus`: an I2C bus and an address, or an SPI bus and its CS pin."""
    if hasattr(bus, "readfrom_mem_into"):
        return I2CRegisters(bus, address)
    if hasattr(address, "value"):
        return SPIRegisters(bus, address)
    raise TypeError("BME280 on SPI needs the chip-select Pin as second argument, not %r" % (address,))
