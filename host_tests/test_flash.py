"""streetnode flash without boards: the file checks (ESP image, UF2), the Pico copy onto a
fake BOOTSEL drive, esptool failing cleanly on a missing and on a silent port, and the
esptool calls (erase, then write at the chip's offset) against a fake chip."""

import os
import pty
import struct
import subprocess
import sys

import pytest

from streetnode import cli
from streetnode.technician import flash

# -- builders -----------------------------------------------------------------------------------


def uf2(payload, family=flash.RP2040_FAMILY_ID, base=flash.RP2040_FLASH_START, flags=flash.UF2_FLAG_FAMILY_ID):
    chunks = [payload[i : i + 256] for i in range(0, len(payload), 256)] or [b""]
    out = b""
    for i, c in enumerate(chunks):
        head = struct.pack("<8I", flash.UF2_MAGIC_START0, flash.UF2_MAGIC_START1, flags, base + 256 * i, 256, i,
                           len(chunks), family)  # fmt: skip
        out += head + c.ljust(476, b"\0") + struct.pack("<I", flash.UF2_MAGIC_END)
    return out


def pico_w_firmware(kb=8):
    body = b"MicroPython v1.29.0 on 2026-11-01; Raspberry Pi Pico W with RP2040\0"
    return uf2((body * (kb * 1024 // len(body) + 1))[: kb * 1024])


def esp_image(chip="ESP32", size=64 * 1024, flash_mb=4, partition=True):
    """A stand-in for MicroPython's merged firmware.bin: the bootloader's image header
    (magic, segments, mode, size/freq, entry, extended header with the chip id) and a
    partition table where the chip puts it."""
    chip_id, offset = flash.ESP_CHIPS[chip]
    size_code = {v: k for k, v in flash._HEADER_FLASH_SIZES.items()}[flash_mb]
    data = bytearray(b"\xff" * size)
    data[0:8] = bytes([0xE9, 3, 2, size_code << 4]) + struct.pack("<I", 0x40080000)
    data[8:24] = bytes([0xEE, 0, 0, 0]) + struct.pack("<H", chip_id) + bytes(10)
    if partition:
        pt = flash.PARTITION_TABLE_ADDR - offset
        data[pt : pt + 2] = b"\xaa\x50"
    return bytes(data)


def boot_drive(path, board_id="RPI-RP2"):
    path.mkdir()
    (path / "INFO_UF2.TXT").write_text("UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: %s\n" % board_id)
    (path / "INDEX.HTM").write_text("<html></html>")
    return path


def run(argv, capsys):
    code = cli.main(["flash"] + argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(err):
    assert err.startswith("streetnode flash: error:") and err.count("\n") == 1, err


# -- Pico ---------------------------------------------------------------------------------------


def test_pico_copy_to_a_fake_bootsel_drive(tmp_path, capsys):
    fw = tmp_path / "RPI_PICO_W-v1.29.0.uf2"
    fw.write_bytes(pico_w_firmware(kb=40))
    drive = boot_drive(tmp_path / "RPI-RP2")
    code, out, err = run(["--board", "pico", "--firmware", str(fw), "--drive", str(drive)], capsys)
    assert code == 0, err
    assert (drive / "firmware.uf2").read_bytes() == fw.read_bytes()
    assert "160 blocks" in out and "40 KB" in out


def test_pico_drive_is_found_by_its_info_file(tmp_path, capsys, monkeypatch):
    (tmp_path / "media").mkdir()
    drive = boot_drive(tmp_path / "media" / "RPI-RP2")
    other = tmp_path / "usbstick"
    other.mkdir()
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 %s vfat rw 0 0\n/dev/sdc1 %s vfat rw 0 0\n"
                      % (other, drive))  # fmt: skip
    assert flash.find_boot_drives(str(mounts)) == [str(drive)]
    monkeypatch.setattr(flash, "find_boot_drives", lambda: [str(drive)])
    fw = tmp_path / "fw.uf2"
    fw.write_bytes(pico_w_firmware())
    code, out, err = run(["--board", "pico", "--firmware", str(fw)], capsys)
    assert code == 0 and (drive / "firmware.uf2").read_bytes() == fw.read_bytes()
    # none, or two: no guessing
    monkeypatch.setattr(flash, "find_boot_drives", lambda: [])
    code, _, err = run(["--board", "pico", "--firmware", str(fw)], capsys)
    assert code == flash.EXIT_NO_BOARD == 4 and "BOOTSEL" in err
    assert_one_line_error(err)
    monkeypatch.setattr(flash, "find_boot_drives", lambda: ["/a", "/b"])
    code, _, err = run(["--board", "pico", "--firmware", str(fw)], capsys)
    assert code == 4 and "--drive" in err


def test_pico_refuses_wrong_files_and_wrong_drives_before_copying(tmp_path, capsys):
    drive = boot_drive(tmp_path / "RPI-RP2")
    good = pico_w_firmware()
    body_no_wifi = b"MicroPython v1.29.0; Raspberry Pi Pico with RP2040\0" * 200
    cases = {
        "rp2350.uf2": (uf2(b"x" * 1024, family=0xE48BFF59), "RP2350 Arm (Pico 2)"),
        "nofamily.uf2": (uf2(b"x" * 1024, flags=0), "no family id"),
        "esp.bin": (esp_image(), "ESP32 image"),
        "text.uf2": (b"hello" * 200, "not a UF2 file"),
        "cut.uf2": (good[:-100], "not whole 512-byte blocks"),
        "short.uf2": (good[:-512], "truncated"),
        "big.uf2": (uf2(b"\0" * 256, base=flash.RP2040_FLASH_START + 2 * 1024 * 1024), "needs 2048 KB"),
        "damaged.uf2": (good[:512] + b"\0" * 8 + good[520:], "damaged"),
        "pico.uf2": (uf2(body_no_wifi), "without Wi-Fi"),
    }
    for name, (data, why) in cases.items():
        (tmp_path / name).write_bytes(data)
        code, _, err = run(["--board", "pico", "--firmware", str(tmp_path / name), "--drive", str(drive)], capsys)
        assert code == flash.EXIT_BAD_FIRMWARE == 3 and why in err, (name, err)
        assert_one_line_error(err)
    assert not (drive / "firmware.uf2").exists()
    (tmp_path / "good.uf2").write_bytes(good)
    not_a_drive = tmp_path / "stick"
    not_a_drive.mkdir()
    code, _, err = run(["--board", "pico", "--firmware", str(tmp_path / "good.uf2"), "--drive", str(not_a_drive)],
                       capsys)  # fmt: skip
    assert code == 4 and "INFO_UF2.TXT" in err
    pico2 = boot_drive(tmp_path / "RP2350", board_id="RP2350")
    code, _, err = run(["--board", "pico", "--firmware", str(tmp_path / "good.uf2"), "--drive", str(pico2)], capsys)
    assert code == 3 and "RP2350" in err
    assert not (pico2 / "firmware.uf2").exists()
    code, _, err = run(["--board", "pico", "--firmware", str(tmp_path / "missing.uf2"), "--drive", str(drive)], capsys)
    assert code == 3 and "cannot be read" in err


# -- ESP32: the image checks -------------------------------------------------------------------


def test_esp_image_checks():
    assert flash.check_esp_image(esp_image("ESP32")) == ("ESP32", 0x1000)
    assert flash.check_esp_image(esp_image("ESP32-S3")) == ("ESP32-S3", 0x0)
    assert flash.check_esp_image(esp_image("ESP32-C3")) == ("ESP32-C3", 0x0)
    assert flash.header_flash_mb(esp_image(flash_mb=8)) == 8
    for data, why in (
        (pico_w_firmware(), "UF2 file"),
        (b"\x7fELF" + bytes(100), "ELF"),
        (b"\x00" * 4096, "starts with 0x00"),
        (b"", "starts with nothing"),
        (esp_image(partition=False), "no partition table at 0x8000"),
        (esp_image()[:12] + b"\x63\x00" + esp_image()[14:], "image id 99"),
    ):
        with pytest.raises(flash.Failure) as e:
            flash.check_esp_image(data)
        assert why in str(e.value) and e.value.code == 3
    # an explicit offset skips the partition-table check (an app image at 0x10000)
    assert flash.check_esp_image(esp_image(partition=False), 0x10000) == ("ESP32", 0x10000)


def test_offsets_and_chip_ids_agree_with_esptool():
    from esptool.targets import CHIP_DEFS

    for chip, (image_id, offset) in flash.ESP_CHIPS.items():
        cls = CHIP_DEFS[chip.lower().replace("-", "")]
        assert cls.CHIP_NAME == chip and cls.IMAGE_CHIP_ID == image_id and cls.BOOTLOADER_FLASH_OFFSET == offset


# -- ESP32: the esptool calls against a fake chip ------------------------------------------------


class FakeEsptool:
    """esptool.cmds as flash.py uses it, recording the calls; a chip and its flash size."""

    def __init__(self, chip="ESP32", flash_size="4MB", fail_at=None):
        from esptool.targets import CHIP_DEFS

        self.cls = CHIP_DEFS[chip.lower().replace("-", "")]
        self.flash_size = flash_size
        self.fail_at = fail_at
        self.calls = []

    def _step(self, name, *args):
        self.calls.append((name,) + args)
        if name == self.fail_at:
            from esptool.util import FatalError

            raise FatalError("Serial data stream stopped: Possible serial noise or corruption.\nsecond line")

    def detect_chip(self, port, baud=115200, connect_attempts=7):
        self._step("detect_chip", port)
        fake = self

        class Chip:
            CHIP_NAME = self.cls.CHIP_NAME
            BOOTLOADER_FLASH_OFFSET = self.cls.BOOTLOADER_FLASH_OFFSET

            def change_baud(self, baud):
                fake._step("change_baud", baud)

        return Chip()

    def run_stub(self, esp):
        self._step("run_stub")
        return esp

    def attach_flash(self, esp):
        self._step("attach_flash")

    def detect_flash_size(self, esp):
        self._step("detect_flash_size")
        return self.flash_size

    def erase_flash(self, esp):
        self._step("erase_flash")

    def write_flash(self, esp, addr_data):
        self._step("write_flash", [(a, len(d)) for a, d in addr_data])

    def reset_chip(self, esp, mode):
        self._step("reset_chip", mode)

    def names(self):
        return [c[0] for c in self.calls]


@pytest.mark.parametrize("chip,offset", [("ESP32", 0x1000), ("ESP32-S3", 0x0), ("ESP32-C3", 0x0)])
def test_esp32_erases_then_writes_at_the_chips_offset(tmp_path, capsys, monkeypatch, chip, offset):
    fake = FakeEsptool(chip)
    monkeypatch.setattr(flash, "_esptool", lambda: fake)
    fw = tmp_path / "fw.bin"
    fw.write_bytes(esp_image(chip, size=100 * 1024))
    code, out, err = run(["--board", "esp32", "--firmware", str(fw), "--port", "/dev/ttyUSB7"], capsys)
    assert code == 0, err
    assert fake.calls == [("detect_chip", "/dev/ttyUSB7"), ("run_stub",), ("change_baud", 460800), ("attach_flash",),
                          ("detect_flash_size",), ("erase_flash",), ("write_flash", [(offset, 100 * 1024)]),
                          ("reset_chip", "hard-reset")]  # fmt: skip
    assert "0x%x" % offset in out


def test_esp32_refuses_before_erasing(tmp_path, capsys, monkeypatch):
    fw = tmp_path / "fw.bin"
    cases = [
        (FakeEsptool("ESP32"), esp_image("ESP32-S3"), "for the ESP32-S3 but the board is an ESP32"),
        (FakeEsptool("ESP32", flash_size="2MB"), esp_image("ESP32", size=2 * 1024 * 1024), "does not fit"),
        (FakeEsptool("ESP32", flash_size="4MB"), esp_image("ESP32", flash_mb=8), "built for 8 MB"),
    ]
    for fake, data, why in cases:
        monkeypatch.setattr(flash, "_esptool", lambda fake=fake: fake)
        fw.write_bytes(data)
        code, _, err = run(["--board", "esp32", "--firmware", str(fw), "--port", "/dev/ttyUSB0"], capsys)
        assert code == flash.EXIT_BAD_FIRMWARE and why in err, err
        assert_one_line_error(err)
        assert "erase_flash" not in fake.names() and "write_flash" not in fake.names()


def test_esp32_failure_part_way_is_one_line_exit_1(tmp_path, capsys, monkeypatch):
    fake = FakeEsptool("ESP32", fail_at="write_flash")
    monkeypatch.setattr(flash, "_esptool", lambda: fake)
    fw = tmp_path / "fw.bin"
    fw.write_bytes(esp_image())
    code, _, err = run(["--board", "esp32", "--firmware", str(fw), "--port", "/dev/ttyUSB0"], capsys)
    assert code == 1 and "Serial data stream stopped" in err and "second line" not in err
    assert_one_line_error(err)


def test_esp32_no_port_found(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(flash, "serial_ports", lambda: [])
    fw = tmp_path / "fw.bin"
    fw.write_bytes(esp_image())
    code, _, err = run(["--board", "esp32", "--firmware", str(fw)], capsys)
    assert code == 4 and "no serial port found" in err
    monkeypatch.setattr(flash, "serial_ports", lambda: ["/dev/ttyUSB0", "/dev/ttyACM0"])
    code, _, err = run(["--board", "esp32", "--firmware", str(fw)], capsys)
    assert code == 4 and "several serial ports" in err


# -- ESP32: the real esptool against ports without a board ----------------------------------------


def test_real_esptool_on_a_missing_port_fails_in_one_line(tmp_path):
    fw = tmp_path / "fw.bin"
    fw.write_bytes(esp_image())
    p = subprocess.run([sys.executable, "-m", "streetnode.cli", "flash", "--board", "esp32", "--firmware", str(fw),
                        "--port", str(tmp_path / "ttyUSB9")], capture_output=True, text=True)  # fmt: skip
    assert p.returncode == 4, p.stderr
    assert p.stderr.startswith("streetnode flash: error: no ESP32 answers on") and p.stderr.count("\n") == 1
    assert "Could not open" in p.stderr and "Traceback" not in p.stderr


def test_real_esptool_on_a_silent_port_fails_in_one_line(tmp_path):
    """A serial port that opens but where nothing answers (a pseudo-terminal): esptool's
    sync fails, and our message is one line with esptool's reason."""
    master, slave = pty.openpty()
    try:
        fw = tmp_path / "fw.bin"
        fw.write_bytes(esp_image())
        p = subprocess.run([sys.executable, "-m", "streetnode.cli", "flash", "--board", "esp32", "--firmware", str(fw),
                            "--port", os.ttyname(slave), "--connect-attempts", "1"], capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    finally:
        os.close(master)
        os.close(slave)
    err_lines = [line for line in p.stderr.splitlines() if line.startswith("streetnode flash:")]
    assert p.returncode == 4, p.stderr
    assert len(err_lines) == 1 and "no ESP32 answers" in err_lines[0] and "Failed to connect" in err_lines[0]
    assert "Traceback" not in p.stderr


def test_cli_usage_errors_and_help(tmp_path):
    cmd = [sys.executable, "-m", "streetnode.cli", "flash"]
    assert subprocess.run(cmd + ["--board", "stm32", "--firmware", "x"], capture_output=True).returncode == 2
    assert subprocess.run(cmd + ["--board", "esp32"], capture_output=True).returncode == 2
    fw = tmp_path / "fw.uf2"
    fw.write_bytes(pico_w_firmware())
    mixed = subprocess.run(cmd + ["--board", "pico", "--firmware", str(fw), "--port", "/dev/ttyUSB0"],
                           capture_output=True, text=True)  # fmt: skip
    assert mixed.returncode == 2 and "--drive" in mixed.stderr
    helptext = subprocess.run(cmd + ["--help"], capture_output=True, text=True).stdout
    assert "examples:" in helptext and "exit codes:" in helptext and "0x1000" in helptext
