# Which known sensor chips sit on an I2C bus, and drivers for them.
#
#     from drivers import detect
#     detect.scan(i2c)    # [(0x23, "bh1750", None), (0x44, "sht4x", "serial 0x0b5a3c7e"), ...]
#     sensors, errors = detect.sensors_from_config(i2c, "auto")
#     detect.driver_for(i2c, "sht4x", "auto")   # a configured sensor with address "auto"
#
# scan() asks the bus which addresses acknowledge (machine.I2C.scan, one probe per
# address), then checks the identity of what answers at an address where a known chip
# can sit, as far as the chip has one:
#
#   0x76, 0x77        BME280 / BMP280  register 0xD0 reads 0x60 / 0x58 (0x56, 0x57: BMP280 samples)
#   0x44, 0x45, 0x46  SHT4x            serial number command 0x89: two words, both CRCs valid
#   0x62              SCD4x            get_serial_number 0x3682: three words with valid CRCs;
#                                      during a periodic measurement the chip refuses that
#                                      command, so get_data_ready_status 0xE4B8 (allowed then)
#                                      answering one CRC-valid word identifies it instead
#   0x69              SPS30            read product type 0xD002: "00080000" with valid CRCs
#   0x23, 0x5C        BH1750           no identity register exists: by acknowledge only
#
# Each entry is (address, name, evidence): evidence says what proved the identity, and
# is None for a chip recognised by its address alone (the BH1750). An address that
# answers but fails its identity check is left out (listed with name None when
# unknown=True), so another chip at a shared address is not mistaken for ours.
#
# Not disturbing the chips: every probe only reads. The BME280 probe reads one register;
# the Sensirion probes send read-only commands (serial number, data-ready status, product
# type), which change no setting and stop no measurement: the SCD4x's periodic
# measurement goes on (no stop_periodic_measurement is sent), and a command the chip
# refuses while measuring is simply NACKed. The BH1750 is not written to at all. Chips
# of other makes at these addresses see at most a register-pointer write (0x89 or
# 0xD0 0x02) and a read. A Sensirion chip that is busy, asleep (SPS30 sleep, SCD41
# power-down) or hung NACKs the probe and is not listed (a sleeping SPS30's interface
# wakes for 100 ms on the probe and goes back to sleep by itself).

from errno import EIO, ENODEV

from hal import clock

from drivers import registry, sensirion

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_REG_CHIP_ID = const(0xD0)
_SHT4X_SERIAL = const(0x89)
_SHT4X_SERIAL_MS = const(10)  # as the SHT4x driver waits
_SCD4X_SERIAL = const(0x3682)
_SCD4X_DATA_READY = const(0xE4B8)
_SCD4X_EXEC_MS = const(1)  # both commands: 1 ms (SCD4x datasheet, table 9)
_SPS30_PRODUCT_TYPE = const(0xD002)
_SPS30_EXEC_MS = const(1)  # the datasheet lists none; 1 ms costs nothing

SPS30_PRODUCT_TYPE = b"00080000"

def _by_address():
    table = {}
    for name in registry.names():
        for address in registry.DRIVERS[name]["addresses"]:
            table[address] = table.get(address, ()) + (name,)
    return table


# Where each known chip can sit: address -> candidate kinds, checked in order
# (drivers/registry.py: "addresses").
CANDIDATES = _by_address()

# name -> (module, class) of the I2C drivers; a BMP280 is read by the BME280 driver.
DRIVERS = {}
for _name in registry.names():
    if "i2c" in registry.DRIVERS[_name]["buses"]:
        DRIVERS[_name] = ("drivers." + _name, registry.DRIVERS[_name]["cls"])
for _name in registry.ALIASES:
    DRIVERS[_name] = DRIVERS[registry.ALIASES[_name]]
del _name


# -- identity checks: each returns (name, evidence) or None ---------------------------------


def _bme280(i2c, address):
    buf = bytearray(1)
    i2c.readfrom_mem_into(address, _REG_CHIP_ID, buf)
    chip_id = buf[0]
    if chip_id == 0x60:
        return "bme280", "chip id 0x60"
    if chip_id in (0x56, 0x57, 0x58):
        return "bmp280", "chip id 0x%02x" % chip_id
    return None


def _write(i2c, address, data):
    # machine.I2C.writeto returns the data bytes ACKed (a soft I2C does not raise on a
    # NACKed data byte): fewer than sent is a refusal.
    acks = i2c.writeto(address, data)
    if isinstance(acks, int) and acks < len(data):
        raise OSError(EIO, "I2C: 0x%02x refused byte %d" % (address, acks))


def _sht4x(i2c, address):
    _write(i2c, address, bytes((_SHT4X_SERIAL,)))
    clock.sleep_ms(_SHT4X_SERIAL_MS)
    buf = bytearray(6)
    i2c.readfrom_into(address, buf)
    if sensirion.bad_word(buf, 2) >= 0:
        return None
    return "sht4x", "serial 0x%04x%04x" % (sensirion.word(buf, 0), sensirion.word(buf, 1))


def _sensirion_read(i2c, address, cmd, n_words, wait_ms):
    """A 16-bit command, its execution time, then n_words CRC-checked words (or None)."""
    buf = bytearray(3 * n_words)
    _write(i2c, address, bytes((cmd >> 8, cmd & 0xFF)))
    clock.sleep_ms(wait_ms)
    i2c.readfrom_into(address, buf)
    return None if sensirion.bad_word(buf, n_words) >= 0 else buf


def _scd4x(i2c, address):
    try:
        buf = _sensirion_read(i2c, address, _SCD4X_SERIAL, 3, _SCD4X_EXEC_MS)
    except OSError:
        buf = None  # refused: most likely a periodic measurement is running
    if buf is not None:
        w = sensirion.word
        return "scd4x", "serial 0x%04x%04x%04x" % (w(buf, 0), w(buf, 1), w(buf, 2))
    buf = _sensirion_read(i2c, address, _SCD4X_DATA_READY, 1, _SCD4X_EXEC_MS)
    if buf is None:
        return None
    return "scd4x", "data-ready status 0x%04x (measuring: serial number not readable)" % sensirion.word(buf, 0)


def _sps30(i2c, address):
    buf = _sensirion_read(i2c, address, _SPS30_PRODUCT_TYPE, 4, _SPS30_EXEC_MS)
    if buf is None:
        return None
    text = bytes(buf[i] for i in (0, 1, 3, 4, 6, 7, 9, 10))
    if text != SPS30_PRODUCT_TYPE:
        return None
    return "sps30", "product type %s" % text.decode()


def _bh1750(i2c, address):
    return "bh1750", None  # no identity to check: the address acknowledged


_CHECKS = {"bme280": _bme280, "sht4x": _sht4x, "scd4x": _scd4x, "sps30": _sps30, "bh1750": _bh1750}


def identify(i2c, address):
    """(name, evidence) of the known chip at `address`, or None. Bus errors count as
    "not this chip" (a NACKed probe is the usual answer of anything else)."""
    for kind in CANDIDATES.get(address, ()):
        try:
            found = _CHECKS[kind](i2c, address)
        except OSError:
            found = None
        if found is not None:
            return found
    return None


def scan(i2c, unknown=False):
    """[(address, name, evidence)] of the known chips on the bus, by address. evidence
    is None where the chip has no identity to check (BH1750: acknowledge only). With
    unknown=True every other acknowledging address is listed too, as (address, None, None)."""
    found = []
    for address in sorted(i2c.scan()):
        ident = identify(i2c, address)
        if ident is not None:
            found.append((address, ident[0], ident[1]))
        elif unknown:
            found.append((address, None, None))
    return found


# -- drivers for what was found ------------------------------------------------------------


def driver_class(name):
    """The driver class for a chip name of DRIVERS (ImportError if it is not installed)."""
    if name not in DRIVERS:
        raise ValueError("no driver for a chip named %r (known: %s)" % (name, ", ".join(sorted(DRIVERS))))
    return registry.load(*DRIVERS[name])


def addresses_of(name, found):
    """Addresses in a scan() result holding chip `name`; "bme280" also takes a BMP280
    (the BME280 driver reads both)."""
    kinds = ("bme280", "bmp280") if name == "bme280" else (name,)
    return [f[0] for f in found if f[1] in kinds]


def _candidates(name):
    kinds = ("bme280",) if name == "bmp280" else (name,)
    return sorted(a for a in CANDIDATES if CANDIDATES[a][0] in kinds)


def resolve_address(i2c, name, found=None, taken=()):
    """The address of a configured sensor whose address is "auto": the first address
    where scan() found chip `name` that is not in `taken`. OSError(ENODEV) naming the
    addresses tried and what the bus holds when there is none."""
    if name not in DRIVERS:
        raise ValueError("no driver for a chip named %r (known: %s)" % (name, ", ".join(sorted(DRIVERS))))
    if found is None:
        found = scan(i2c, unknown=True)
    for address in addresses_of(name, found):
        if address not in taken:
            return address
    raise OSError(
        ENODEV,
        "%s: address auto: none found at %s (the bus answers at %s)"
        % (
            name,
            ", ".join("0x%02x" % a for a in _candidates(name)),
            ", ".join("0x%02x" % f[0] for f in found) or "no address",
        ),
    )


def driver_for(i2c, name, address="auto", options=None, found=None):
    """A driver instance for one configured I2C sensor: address an int, None (the
    driver's default) or "auto" (resolve_address). Raises what the driver raises."""
    cls = driver_class(name)
    if address == "auto":
        address = resolve_address(i2c, name, found)
    options = options or {}
    if address is None:
        return cls(i2c, **options)
    return cls(i2c, address, **options)


def _names(found):
    """Sensor names: the chip's name, or name_<address> when the bus holds several."""
    count = {}
    for address, name, evidence in found:
        count[name] = count.get(name, 0) + 1
    return [name if count[name] == 1 else "%s_%02x" % (name, address) for address, name, evidence in found]


def sensors_from_config(i2c, entry="auto", found=None):
    """Turn a configuration entry into driver instances: ({sensor name: driver}, errors).

    entry "auto": one driver per known chip scan() finds (`found`: a scan() result to
    use instead of scanning again), named after the chip ("sht4x"), or "sht4x_45" when
    several of a kind are found. entry may also be a list of "auto" and sensor entries
    as the node's config has them, {"name": "light", "driver": "bh1750", "address":
    0x5C or None or "auto", "options": {...}} (other keys, such as "bus" or
    "interval_s", are the caller's); "auto" entries and addresses resolve to chips not
    already claimed by another entry.

    A sensor whose driver cannot start (not installed, no chip found, or its
    constructor raised OSError) is left out and reported in errors as
    (name, address, message), for health telemetry.
    """
    if entry == "auto":
        entry = ["auto"]
    if not isinstance(entry, (list, tuple)):
        raise ValueError("sensor configuration must be 'auto' or a list, not %r" % (entry,))
    sensors = {}
    errors = []
    explicit = []
    auto = False
    for item in entry:
        if item == "auto":
            auto = True
            continue
        if not isinstance(item, dict) or item.get("driver") not in DRIVERS:
            raise ValueError(
                "sensor entry must be 'auto' or a dict whose driver is one of %s, not %r" % (", ".join(sorted(DRIVERS)), item)
            )
        name = item.get("name") or item["driver"]
        if name in [e.get("name") or e["driver"] for e in explicit]:
            raise ValueError("sensor name %r used twice" % (name,))
        explicit.append(item)
    needs_scan = auto or [e for e in explicit if e.get("address") == "auto"]
    if needs_scan and found is None:
        found = scan(i2c, unknown=True)
    claimed = [e.get("address") for e in explicit if isinstance(e.get("address"), int)]
    for item in explicit:
        name = item.get("name") or item["driver"]
        address = item.get("address")
        if address == "auto":
            try:
                address = resolve_address(i2c, item["driver"], found, claimed)
            except OSError as e:
                errors.append((name, "auto", " ".join(str(a) for a in e.args[1:]) or str(e)))
                continue
            claimed.append(address)
        _start(i2c, sensors, errors, name, item["driver"], address, item.get("options") or {})
    if auto:
        known = [f for f in found if f[1] is not None and f[0] not in claimed]
        for (address, name, evidence), sensor_name in zip(known, _names(known)):
            if sensor_name in sensors:
                sensor_name = "%s_%02x" % (name, address)
            _start(i2c, sensors, errors, sensor_name, name, address, {})
    return sensors, errors


def _start(i2c, sensors, errors, sensor_name, name, address, options):
    try:
        sensors[sensor_name] = driver_for(i2c, name, address, options)
    except ImportError as e:
        errors.append((sensor_name, address, "driver %s not installed (%s)" % (name, e)))
    except OSError as e:
        errors.append((sensor_name, address, "%s: %s" % (name, " ".join(str(a) for a in e.args))))
