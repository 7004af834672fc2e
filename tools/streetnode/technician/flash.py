"""`streetnode flash`: MicroPython itself onto a blank board, from a firmware file the
technician supplies (nothing is downloaded).

ESP32 family: esptool's public Python API (esptool.cmds: detect_chip, run_stub,
attach_flash, detect_flash_size, erase_flash, write_flash, reset_chip) over one serial
connection, rather than esptool.main([...]) or a subprocess: the chip is identified
first, so the offset follows the chip (0x1000 on the ESP32 and ESP32-S2, 0x0 on the S3,
C3, C6: MicroPython's install instructions and esptool's BOOTLOADER_FLASH_OFFSET), the
image is checked against the chip and the detected flash size *before* anything is
erased, and esptool's errors arrive as exceptions we turn into one line, not as
sys.exit() from inside a library.

Pico W (RP2040): the UF2 file is checked block by block (magic numbers, the RP2040
family id 0xe48bff56, addresses inside the 2 MB flash) and copied to the BOOTSEL drive
RPI-RP2 (found by its INFO_UF2.TXT), then flushed with fsync.
"""

import argparse
import errno
import os
import struct
from pathlib import Path

# Exit codes: EXIT_FAILED flashing started and did not finish (run it again: the board may be
# blank), EXIT_BAD_FIRMWARE not the right kind of file for this board or it does not fit,
# EXIT_NO_BOARD no serial port / no ESP answers / no BOOTSEL drive.
from streetnode.common.errors import EXIT_BAD_FIRMWARE, EXIT_FAILED, EXIT_NO_BOARD, EXIT_USAGE, Failure, one_line

# -- ESP32 images ---------------------------------------------------------------------------

ESP_IMAGE_MAGIC = 0xE9
# chip -> (image chip id in the extended header, where MicroPython's firmware.bin goes)
ESP_CHIPS = {
    "ESP32": (0, 0x1000),
    "ESP32-S2": (2, 0x1000),
    "ESP32-S3": (9, 0x0),
    "ESP32-C3": (5, 0x0),
    "ESP32-C2": (12, 0x0),
    "ESP32-C6": (13, 0x0),
}
_CHIP_BY_ID = {v[0]: k for k, v in ESP_CHIPS.items()}
PARTITION_TABLE_ADDR = 0x8000  # MicroPython's (and ESP-IDF's default) partition table
_PARTITION_MAGIC = b"\xaa\x50"
_HEADER_FLASH_SIZES = {0: 1, 1: 2, 2: 4, 3: 8, 4: 16, 5: 32, 6: 64, 7: 128}  # MB, high nibble of byte 3

# -- UF2 (https://github.com/microsoft/uf2) ---------------------------------------------------

UF2_MAGIC_START0 = 0x0A324655  # "UF2\n"
UF2_MAGIC_START1 = 0x9E5D5157
UF2_MAGIC_END = 0x0AB16F30
UF2_FLAG_NOT_MAIN_FLASH = 0x00000001
UF2_FLAG_FAMILY_ID = 0x00002000
RP2040_FAMILY_ID = 0xE48BFF56
OTHER_FAMILIES = {  # what a technician may pick up by mistake
    0xE48BFF57: "RP2350 absolute (Pico 2)",
    0xE48BFF58: "RP2350 data (Pico 2)",
    0xE48BFF59: "RP2350 Arm (Pico 2)",
    0xE48BFF5A: "RP2350 RISC-V (Pico 2)",
    0x1C5F21B0: "ESP32",
    0xBFDD4EEE: "ESP32-S2",
    0xC47E5767: "ESP32-S3",
    0xADA52840: "nRF52840",
}
RP2040_FLASH_START = 0x10000000
PICO_W_FLASH_BYTES = 2 * 1024 * 1024
PICO_BOOT_LABEL = "RPI-RP2"


def _kind_of(data):
    """What a firmware file looks like, for messages: 'uf2', 'esp', 'elf', 'hex' or None."""
    if len(data) >= 8 and struct.unpack_from("<II", data) == (UF2_MAGIC_START0, UF2_MAGIC_START1):
        return "uf2"
    if data[:1] == bytes([ESP_IMAGE_MAGIC]):
        return "esp"
    if data[:4] == b"\x7fELF":
        return "elf"
    if data[:1] == b":":
        return "hex"
    return None


def check_esp_image(data, offset=None):
    """(chip name, offset) for a complete MicroPython image for the ESP32 family (its
    bootloader header first: magic 0xE9, chip id in the extended header), or Failure
    saying what the file is instead. With offset None the chip's own offset is used and
    the partition table must sit at 0x8000 in flash (so a micropython.bin app image,
    which belongs at 0x10000, is refused)."""
    kind = _kind_of(data)
    if kind == "uf2":
        raise Failure("this is a UF2 file (for a Pico, copied to its drive); an ESP32 needs MicroPython's .bin "
                      "firmware file", EXIT_BAD_FIRMWARE)  # fmt: skip
    if kind == "elf":
        raise Failure("this is an ELF file (a build artefact); flash the .bin firmware file instead", EXIT_BAD_FIRMWARE)
    if len(data) < 24 or kind != "esp":
        first = "0x%02x" % data[0] if data else "nothing"
        raise Failure("not an ESP32 firmware image (starts with %s, an image starts with 0xe9)" % first,
                      EXIT_BAD_FIRMWARE)  # fmt: skip
    chip_id = struct.unpack_from("<H", data, 12)[0]
    chip = _CHIP_BY_ID.get(chip_id)
    if chip is None:
        raise Failure("the image is for a chip with image id %d, not one of %s" % (chip_id, ", ".join(ESP_CHIPS)),
                      EXIT_BAD_FIRMWARE)  # fmt: skip
    if offset is None:
        offset = ESP_CHIPS[chip][1]
        pt = PARTITION_TABLE_ADDR - offset
        if data[pt : pt + 2] != _PARTITION_MAGIC:
            raise Failure("no partition table at 0x%x: not a complete MicroPython firmware for the %s (take the "
                          "firmware .bin from micropython.org, not micropython.bin; or give --offset)"
                          % (PARTITION_TABLE_ADDR, chip), EXIT_BAD_FIRMWARE)  # fmt: skip
    return chip, offset


def header_flash_mb(data):
    """The flash size the image was built for (MB), from its header; None if unknown."""
    return _HEADER_FLASH_SIZES.get(data[3] >> 4)


def check_uf2(data):
    """(blocks, highest address + 1) of a UF2 image for the RP2040's flash, or Failure."""
    kind = _kind_of(data)
    if kind == "esp":
        raise Failure("this is an ESP32 image (.bin); a Pico W needs MicroPython's .uf2 file", EXIT_BAD_FIRMWARE)
    if kind != "uf2":
        raise Failure("not a UF2 file (a Pico W needs MicroPython's .uf2 firmware file)", EXIT_BAD_FIRMWARE)
    if len(data) % 512:
        raise Failure("UF2 file of %d bytes, not whole 512-byte blocks: truncated?" % len(data), EXIT_BAD_FIRMWARE)
    n = len(data) // 512
    end = 0
    count = None
    for i in range(n):
        b = i * 512
        m0, m1, flags, addr, size, blockno, numblocks, family = struct.unpack_from("<8I", data, b)
        (m_end,) = struct.unpack_from("<I", data, b + 508)
        if (m0, m1, m_end) != (UF2_MAGIC_START0, UF2_MAGIC_START1, UF2_MAGIC_END):
            raise Failure("UF2 block %d is damaged (bad magic numbers)" % i, EXIT_BAD_FIRMWARE)
        if flags & UF2_FLAG_NOT_MAIN_FLASH:
            continue
        if not flags & UF2_FLAG_FAMILY_ID or family != RP2040_FAMILY_ID:
            what = "no family id"
            if flags & UF2_FLAG_FAMILY_ID:
                what = OTHER_FAMILIES.get(family, "family 0x%08x" % family)
            raise Failure("the UF2 file is for %s, not the Pico W's RP2040 (family 0x%08x)" % (what, RP2040_FAMILY_ID),
                          EXIT_BAD_FIRMWARE)  # fmt: skip
        if count is None:
            count = numblocks
        if numblocks != count or blockno != i or size > 476:
            raise Failure("UF2 block %d is out of sequence (block %d of %d): a damaged or concatenated file"
                          % (i, blockno, numblocks), EXIT_BAD_FIRMWARE)  # fmt: skip
        if addr < RP2040_FLASH_START:
            raise Failure("UF2 block %d writes to 0x%08x, below the RP2040's flash" % (i, addr), EXIT_BAD_FIRMWARE)
        end = max(end, addr + size)
    if count != n:
        raise Failure("the UF2 file has %d blocks but says %s: truncated?" % (n, count), EXIT_BAD_FIRMWARE)
    used = end - RP2040_FLASH_START
    if used > PICO_W_FLASH_BYTES:
        raise Failure("the UF2 image needs %d KB of flash; the Pico W has %d KB" % (used // 1024,
                      PICO_W_FLASH_BYTES // 1024), EXIT_BAD_FIRMWARE)  # fmt: skip
    payload = b"".join(data[i * 512 + 32 : i * 512 + 32 + 476] for i in range(n))
    if b"Raspberry Pi Pico with RP2040" in payload:  # MicroPython's RPI_PICO build: no Wi-Fi driver
        raise Failure("this is MicroPython for the Pico without Wi-Fi; a Pico W needs the RPI_PICO_W build",
                      EXIT_BAD_FIRMWARE)  # fmt: skip
    return n, end


# -- Pico: the BOOTSEL drive ------------------------------------------------------------------


def _mount_points(mounts_text):
    out = []
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out.append(parts[1].replace("\\040", " "))
    return out


def boot_drive_info(path):
    """INFO_UF2.TXT of a BOOTSEL drive as a dict ("Board-ID": "RPI-RP2", ...), or None."""
    try:
        text = (Path(path) / "INFO_UF2.TXT").read_text(errors="replace")
    except OSError:
        return None
    info = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            info[k.strip()] = v.strip()
    info.setdefault("Board-ID", "")
    return info


def find_boot_drives(mounts_file="/proc/mounts"):
    """Mounted drives that are UF2 bootloaders (they carry INFO_UF2.TXT)."""
    candidates = []
    try:
        with open(mounts_file) as f:
            candidates += _mount_points(f.read())
    except OSError:
        pass
    user = os.environ.get("USER", "")
    candidates += ["/media/%s/%s" % (user, PICO_BOOT_LABEL), "/run/media/%s/%s" % (user, PICO_BOOT_LABEL),
                   "/Volumes/" + PICO_BOOT_LABEL]  # fmt: skip
    seen, found = set(), []
    for c in candidates:
        if c not in seen and boot_drive_info(c) is not None:
            seen.add(c)
            found.append(c)
    return found


def copy_uf2(data, drive, name="firmware.uf2"):
    """Write the UF2 file onto the BOOTSEL drive and flush it to the board."""
    target = Path(drive) / name
    try:
        fd = os.open(str(target), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as e:
        raise Failure("cannot write to %s (%s)" % (drive, e.strerror or e), EXIT_FAILED) from None
    try:
        view = memoryview(data)
        done = 0
        while done < len(data):
            done += os.write(fd, view[done : done + 65536])
    except OSError as e:
        os.close(fd)
        raise Failure("the copy to %s stopped after %d of %d bytes (%s): the board keeps its old firmware; try "
                      "again" % (drive, done, len(data), e.strerror or e), EXIT_FAILED) from None  # fmt: skip
    try:
        os.fsync(fd)
        os.close(fd)
    except OSError as e:
        # The RP2040 reboots as soon as it has the last block, and the drive vanishes
        # under a late flush: all bytes were written, so that is the success case.
        if e.errno not in (errno.EIO, errno.ENODEV, errno.ENOENT, errno.ENXIO):
            raise Failure("flushing to %s failed (%s)" % (drive, e.strerror or e), EXIT_FAILED) from None
    return target


def flash_pico(args, data):
    blocks, end = check_uf2(data)
    if args.drive:
        info = boot_drive_info(args.drive)
        if info is None:
            raise Failure("%s is not a Pico's BOOTSEL drive (no INFO_UF2.TXT): hold BOOTSEL while plugging the "
                          "Pico in, it appears as %s" % (args.drive, PICO_BOOT_LABEL), EXIT_NO_BOARD)  # fmt: skip
        drive = args.drive
    else:
        drives = find_boot_drives()
        if not drives:
            raise Failure("no Pico in BOOTSEL mode found: hold BOOTSEL while plugging it in (a drive %s appears), "
                          "or give --drive" % PICO_BOOT_LABEL, EXIT_NO_BOARD)  # fmt: skip
        if len(drives) > 1:
            raise Failure("several boards in BOOTSEL mode (%s): choose one with --drive" % ", ".join(drives),
                          EXIT_NO_BOARD)  # fmt: skip
        drive = drives[0]
        info = boot_drive_info(drive)
    board_id = info.get("Board-ID", "")
    if board_id and board_id != PICO_BOOT_LABEL:
        raise Failure("the board at %s is %s, not a Pico W's RP2040 (%s)" % (drive, board_id, PICO_BOOT_LABEL),
                      EXIT_BAD_FIRMWARE)  # fmt: skip
    print("copying %s (%d blocks, %d KB of flash) to %s" % (args.firmware, blocks, (end - RP2040_FLASH_START) // 1024,
                                                          drive))  # fmt: skip
    copy_uf2(data, drive)
    print("done: the Pico reboots into MicroPython (the %s drive disappears); next: streetnode deploy"
          % PICO_BOOT_LABEL)  # fmt: skip
    return 0


# -- ESP32 --------------------------------------------------------------------------------------


def _esptool():
    """esptool's public API (a test hands in a fake)."""
    import esptool.cmds

    return esptool.cmds


def serial_ports():
    """USB serial ports (pyserial, which esptool brings)."""
    from serial.tools import list_ports

    return sorted(p.device for p in list_ports.comports() if getattr(p, "vid", None) is not None)


def _pick_port(args):
    if args.port:
        return args.port
    ports = serial_ports()
    if not ports:
        raise Failure("no serial port found: plug the board in with a data cable (not a charge-only one), or give "
                      "--port", EXIT_NO_BOARD)  # fmt: skip
    if len(ports) > 1:
        raise Failure("several serial ports (%s): choose one with --port" % ", ".join(ports), EXIT_NO_BOARD)
    return ports[0]


def _flash_bytes(size):
    if size is None:
        return None
    size = size.upper()
    for unit, mult in (("MB", 1 << 20), ("KB", 1 << 10)):
        if size.endswith(unit):
            return int(size[: -len(unit)]) * mult
    return None


def flash_esp32(args, data):
    image_chip, offset = check_esp_image(data, args.offset)
    port = _pick_port(args)
    cmds = _esptool()
    try:
        esp = cmds.detect_chip(port, baud=115200, connect_attempts=args.connect_attempts)
    except Exception as e:  # esptool's FatalError, pyserial's SerialException, OSError
        raise Failure("no ESP32 answers on %s (%s): hold BOOT and press EN, check the cable, or give --port"
                      % (port, one_line(e)), EXIT_NO_BOARD) from None  # fmt: skip
    try:
        chip = esp.CHIP_NAME
        if chip != image_chip:
            raise Failure("the firmware is for the %s but the board is an %s" % (image_chip, chip), EXIT_BAD_FIRMWARE)
        if args.offset is None:
            offset = getattr(esp, "BOOTLOADER_FLASH_OFFSET", offset)
        try:
            esp = cmds.run_stub(esp)
            if args.baud and args.baud != 115200:
                esp.change_baud(args.baud)
            cmds.attach_flash(esp)
            flash_size = _flash_bytes(cmds.detect_flash_size(esp))
        except Failure:
            raise
        except Exception as e:
            raise Failure("the %s on %s stopped answering (%s)" % (chip, port, one_line(e)), EXIT_NO_BOARD) from None
        if flash_size is None:
            raise Failure("could not detect the flash size of the %s on %s" % (chip, port), EXIT_FAILED)
        if offset + len(data) > flash_size:
            raise Failure("the firmware (%d KB at 0x%x) does not fit the board's %d KB of flash"
                          % (len(data) // 1024, offset, flash_size // 1024), EXIT_BAD_FIRMWARE)  # fmt: skip
        built_for = header_flash_mb(data)
        if built_for and built_for * (1 << 20) > flash_size:
            raise Failure("the firmware was built for %d MB of flash; the board has %d MB (take the build for "
                          "this board)" % (built_for, flash_size >> 20), EXIT_BAD_FIRMWARE)  # fmt: skip
        print("%s on %s: %d MB flash; erasing, then writing %d KB at 0x%x" % (chip, port, flash_size >> 20,
                                                                           len(data) // 1024, offset))  # fmt: skip
        try:
            if not args.no_erase:
                cmds.erase_flash(esp)
            cmds.write_flash(esp, [(offset, data)])
            cmds.reset_chip(esp, "hard-reset")
        except Exception as e:
            raise Failure("flashing the %s on %s failed (%s): run streetnode flash again" % (chip, port, one_line(e)),
                          EXIT_FAILED) from None  # fmt: skip
    finally:
        port_obj = getattr(esp, "_port", None)
        if port_obj is not None:
            try:
                port_obj.close()
            except Exception:  # noqa: BLE001 - closing a port that went away
                pass
    print("done: MicroPython %s runs on the board; next: streetnode deploy --port %s" % (chip, port))
    return 0


# -- the command --------------------------------------------------------------------------------


def flash(args):
    try:
        data = Path(args.firmware).read_bytes()
    except OSError as e:
        raise Failure("--firmware %s: cannot be read (%s)" % (args.firmware, e.strerror or e),
                      EXIT_BAD_FIRMWARE) from None  # fmt: skip
    if args.board == "pico":
        if args.port or args.offset is not None:
            raise Failure("--port and --offset are for ESP32 boards; a Pico takes --drive", EXIT_USAGE)
        return flash_pico(args, data)
    if args.drive:
        raise Failure("--drive is for a Pico; an ESP32 takes --port", EXIT_USAGE)
    return flash_esp32(args, data)


def _address(text):
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an address (0x1000)" % text) from None


HELP_EPILOG = """\
examples:
  # ESP32-DevKitC: the firmware .bin from micropython.org/download/ESP32_GENERIC
  streetnode flash --board esp32 --firmware ESP32_GENERIC-v1.29.0.bin --port /dev/ttyUSB0

  # Pico W: hold BOOTSEL while plugging it in, then
  streetnode flash --board pico --firmware RPI_PICO_W-v1.29.0.uf2
  streetnode flash --board pico --firmware RPI_PICO_W-v1.29.0.uf2 --drive /media/$USER/RPI-RP2

what it checks before touching the board:
  ESP32: an ESP image (first byte 0xe9) for the chip that answers (ESP32, -S2, -S3, -C3, -C6), with its
  partition table at 0x8000, that fits the detected flash. Then erase, write at 0x1000 (ESP32, ESP32-S2)
  or 0x0 (S3, C3, C6), and reset. Nothing is erased when a check fails.
  Pico: UF2 blocks with the RP2040 family id 0xe48bff56, inside the Pico W's 2 MB flash, MicroPython's
  Pico W build; copied to the drive RPI-RP2 (found by its INFO_UF2.TXT) and flushed.

exit codes:
  0 flashed   1 flashing failed part way (run it again)   2 usage error
  3 wrong firmware file: not for this board or chip, or it does not fit its flash
  4 no board: no serial port, no ESP32 answers, or no Pico BOOTSEL drive
"""


def register(sub):
    p = sub.add_parser(
        "flash",
        help="put MicroPython on a blank board from a firmware file (esptool / UF2 copy)",
        description="Writes MicroPython to a blank board from a file you supply: an ESP32 over its serial port "
        "with esptool (erase, then write at the chip's offset), a Pico W by copying the UF2 file to its "
        "BOOTSEL drive. Nothing is downloaded.",
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--board", required=True, choices=("esp32", "pico"),
                   help="esp32 (the ESP32 family) or pico (Pico W)")  # fmt: skip
    p.add_argument("--firmware", required=True, metavar="FILE", help="MicroPython's .bin (esp32) or .uf2 (pico)")
    p.add_argument("--port", help="esp32: the serial port (default: the only USB serial port)")
    p.add_argument("--baud", type=int, default=460800, help="esp32: baud rate for writing (default 460800)")
    p.add_argument("--offset", type=_address, help="esp32: write here instead of the chip's offset (skips the "
                   "partition table check)")
    p.add_argument("--no-erase", action="store_true", help="esp32: write without erasing the whole flash first")
    p.add_argument("--connect-attempts", type=int, default=3, help="esp32: connection attempts (default 3)")
    p.add_argument("--drive", metavar="DIR", help="pico: the mounted RPI-RP2 drive (default: found by itself)")
    p.set_defaults(func=flash)
    return p
