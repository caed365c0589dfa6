"""boards: naming ports by USB ID (pyserial ListPortInfo records), BOOTSEL drives, --port auto,
who answers on a port (fake boards on a pty); flash: UF2 / ESP image checks, the copy to a
BOOTSEL drive and the esptool command lines (no chip needed)."""

from __future__ import annotations

import json
import struct
import time

import pytest
from serial.tools.list_ports_common import ListPortInfo

from boardnet.cli import main
from boardnet.codegen.mpy import mpy_compatible, mpy_header
from boardnet.errors import BoardError, UsageError
from boardnet.link import boards, flash, micropython
from boardnet.link.ports import resolve


def record(device: str, vid: int | None = None, pid: int | None = None, desc: str = "n/a") -> ListPortInfo:
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid, info.description = vid, pid, desc
    if vid is not None:
        info.serial_number = "E6614C311B7A1234"
    return info


EXPECTED = [
    (0x2E8A, 0x0005, "rp2", "micropython", "Pico with MicroPython"),
    (0x2E8A, 0x000A, "rp2", "c", "pico-sdk USB stdio"),
    (0x303A, 0x1001, "esp32", None, "Espressif native USB serial/JTAG"),
    (0x10C4, 0xEA60, "esp32", None, "CP210x"),
    (0x1A86, 0x7523, "esp32", None, "CH340"),
    (0x1A86, 0x55D4, "esp32", None, "CH9102"),
    (0x0403, 0x6001, "esp32", None, "FTDI"),
]


@pytest.fixture
def ports(monkeypatch):
    """Set what comports() returns; no virtual boards."""
    state: list[ListPortInfo] = []
    monkeypatch.setattr(boards, "comports", lambda: list(state))
    monkeypatch.setattr(boards, "_virtual", lambda: [])
    monkeypatch.setattr(boards, "DRIVE_GLOBS", ())
    return state


@pytest.mark.parametrize("vid,pid,family,runtime,name", EXPECTED, ids=[e[4] for e in EXPECTED])
def test_each_usb_id_is_named(ports, vid, pid, family, runtime, name):
    ports.append(record("/dev/ttyACM0", vid, pid))
    (entry,) = boards.list_boards()
    assert name in entry.description
    assert (entry.family, entry.runtime, entry.usb) == (family, runtime, f"{vid:04X}:{pid:04X}")
    assert entry.port == "/dev/ttyACM0" and entry.serial_number


def test_bootsel_ids_are_named_and_unknown_ports_listed(ports):
    assert "RP2040 in BOOTSEL" in boards.usb_kind(0x2E8A, 0x0003).name
    assert "RP2350 in BOOTSEL" in boards.usb_kind(0x2E8A, 0x000F).name
    ports += [record("COM7", 0x1234, 0x5678, "USB Serial Device (COM7)"), record("/dev/ttyS0")]
    entries = boards.list_boards()
    assert [e.port for e in entries] == ["/dev/ttyS0", "COM7"]
    assert all(e.family is None and "not a board boardnet knows" in e.description for e in entries)
    assert "USB Serial Device" in entries[1].description


def test_port_auto_picks_the_one_board_and_refuses_two(ports):
    ports += [record("/dev/ttyS0"), record("/dev/cu.usbmodem1101", 0x2E8A, 0x0005)]
    assert resolve("auto").url == "/dev/cu.usbmodem1101"
    ports.append(record("COM3", 0x10C4, 0xEA60))
    with pytest.raises(BoardError) as e:
        resolve("auto")
    assert "several boards" in str(e.value)
    assert "/dev/cu.usbmodem1101" in str(e.value) and "COM3" in str(e.value)
    assert e.value.status == 3
    ports.clear()
    with pytest.raises(BoardError, match="no board found"):
        resolve("auto")


def test_port_auto_counts_virtual_boards(ports, monkeypatch):
    monkeypatch.setattr(boards, "_virtual", lambda: [
        boards.BoardEntry("/dev/pts/7", "virtual MicroPython board (WebAssembly)", "virtual", "micropython")])
    assert resolve("auto").url == "/dev/pts/7"


def test_bootsel_drive_found_by_info_uf2(tmp_path, ports, monkeypatch):
    drive = tmp_path / "media" / "me" / "RPI-RP2"
    drive.mkdir(parents=True)
    (drive / "INFO_UF2.TXT").write_text("UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n")
    (tmp_path / "media" / "me" / "USBSTICK").mkdir()
    monkeypatch.setattr(boards, "DRIVE_GLOBS", (str(tmp_path / "media" / "*" / "*"),))
    (entry,) = boards.list_boards()
    assert entry.port is None and entry.drive == str(drive) and entry.runtime == "bootsel"
    assert "RP2040 in BOOTSEL" in entry.description
    with pytest.raises(BoardError):
        boards.pick_one([entry])  # a drive is not a serial port


def test_boards_cli_json(ports, capsys):
    ports.append(record("/dev/ttyACM0", 0x2E8A, 0x000A))
    assert main(["boards", "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert item["port"] == "/dev/ttyACM0" and item["runtime"] == "c" and item["usb"] == "2E8A:000A"


# ---- who answers on a port -------------------------------------------------------------
HELLO = (b"OK hello proto=1 runtime=c platform=rp2040 model=people fp=0123456789abcdef "
         b"precision=f32 n_in=2 n_out=1 window=8 line=256\r\n")


def c_firmware(data: bytes, peer=None) -> bytes | None:
    return HELLO if b"hello" in data else None


def repl(data: bytes, peer=None) -> bytes | None:
    if b"hello" in data:
        return (b"hello\r\nTraceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\n"
                b"NameError: name 'hello' isn't defined\r\n>>> ")
    return None


@pytest.fixture
def peer(pty_peer):
    """A fake board that answers chunks of bytes as they arrive."""
    return lambda answer: pty_peer(answer, lines=False)


def test_identify_c_firmware_repl_and_silence(peer):
    who = boards.identify(peer(c_firmware).port, timeout=0.5)
    assert who.kind == "serve" and who.runtime == "c" and who.hello.fingerprint == "0123456789abcdef"
    assert boards.identify(peer(repl).port, timeout=0.5).runtime == "micropython"
    start = time.monotonic()
    who = boards.identify(peer(None).port, timeout=0.5)
    assert who.kind == "silent" and who.runtime is None
    assert time.monotonic() - start < 3


def test_probe_reports_the_c_firmware_hello(peer):
    p = peer(c_firmware)
    entry = boards.BoardEntry(p.port, "Pico", "rp2")
    boards.probe_entry(entry, timeout=0.5)
    assert entry.runtime == "c" and entry.probe["hello"]["model"] == "people" and entry.error is None
    silent = boards.BoardEntry(peer(None).port, "?", None)
    boards.probe_entry(silent, timeout=0.3)
    assert silent.error == "no answer"


def test_parse_probe_and_mpy_abi():
    out = ("noise\r\nBOARDNET-PROBE " + json.dumps({
        "version": "1.25.0", "platform": "rp2", "machine": "Raspberry Pi Pico with RP2040",
        "mpy": 6 | 3 << 8 | 4 << 10, "double": False, "mem_free": 180000, "fs_free": 800000,
        "files": {"main.py": {"size": 40, "sha256": "ab"}}, "fingerprint": None, "extra": 1}) + "\r\n")
    facts = micropython.parse_probe(out)
    assert facts.mpy_version == (6, 3, "armv6m") and facts.float_precision == "float32"
    assert facts.to_json()["mpy_abi"] == {"version": 6, "sub_version": 3, "arch": "armv6m"}
    with pytest.raises(BoardError, match="no result"):
        micropython.parse_probe("Traceback ...")


def test_mpy_compatibility_rule(tmp_path):
    pico = 6 | 3 << 8 | 4 << 10
    assert mpy_compatible(pico, (6, 3, "none")) is None
    assert mpy_compatible(pico, (6, 1, "none")) is None  # bytecode: the sub-version does not matter
    assert mpy_compatible(pico, (6, 3, "armv6m")) is None
    assert "v6.3" in mpy_compatible(pico, (5, 0, "none"))
    assert "armv6m" in mpy_compatible(pico, (6, 3, "xtensawin"))
    assert "no sys.implementation._mpy" in mpy_compatible(None, (6, 3, "none"))
    f = tmp_path / "m.mpy"
    f.write_bytes(b"M\x06" + bytes([4 << 2 | 3, 31]) + b"...")
    assert mpy_header(f) == (6, 3, "armv6m")
    f.write_bytes(b"print(1)\n")
    with pytest.raises(UsageError):
        mpy_header(f)


# ---- flash: files, BOOTSEL copy, esptool -----------------------------------------------
def uf2_block(i: int, n: int, family: int = 0xE48BFF56) -> bytes:
    head = struct.pack("<IIIIIIII", 0x0A324655, 0x9E5D5157, 0x2000, 0x10000000 + 256 * i, 256, i, n, family)
    return head + bytes(476) + struct.pack("<I", 0x0AB16F30)


def test_uf2_checks(tmp_path):
    good = tmp_path / "fw.uf2"
    good.write_bytes(b"".join(uf2_block(i, 3) for i in range(3)))
    assert flash.uf2_info(good) == {"blocks": 3, "families": ["rp2040"]}
    bad = tmp_path / "bad.uf2"
    bad.write_bytes(uf2_block(0, 1)[:-4] + b"\0\0\0\0")
    with pytest.raises(UsageError, match="magic"):
        flash.uf2_info(bad)
    bad.write_bytes(b"<html>not found</html>")
    with pytest.raises(UsageError, match="512-byte"):
        flash.uf2_info(bad)


def test_esp_image_checks(tmp_path):
    img = tmp_path / "fw.bin"
    img.write_bytes(bytes([0xE9, 3, 2, 0x20]) + bytes(8) + struct.pack("<H", 5) + bytes(100))
    assert flash.esp_image_info(img)["chip"] == "esp32c3"
    assert flash.esp_offset("esp32c3") == 0 and flash.esp_offset("esp32") == 0x1000
    img.write_bytes(b"\x7fELF" + bytes(40))
    with pytest.raises(UsageError, match="0xE9"):
        flash.esp_image_info(img)


def test_uf2_copied_to_the_bootsel_drive(tmp_path, capsys):
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    (drive / "INFO_UF2.TXT").write_text("Model: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n")
    fw = tmp_path / "RPI_PICO-v1.25.0.uf2"
    fw.write_bytes(b"".join(uf2_block(i, 2) for i in range(2)))
    assert main(["flash-micropython", str(fw), "--drive", str(drive), "--json"]) == 0
    assert (drive / fw.name).read_bytes() == fw.read_bytes()
    assert json.loads(capsys.readouterr().out)["blocks"] == 2
    # not a BOOTSEL drive; no drive and no port
    assert main(["flash-micropython", str(fw), "--drive", str(tmp_path)]) == 2
    assert "INFO_UF2.TXT" in capsys.readouterr().err
    with pytest.raises(UsageError, match="no BOOTSEL drive"):
        flash.flash_uf2(fw, drive_roots=[])


def test_flash_micropython_refuses_wrong_files(tmp_path, capsys):
    f = tmp_path / "micropython.bin"
    f.write_bytes(b"PK\x03\x04zip")
    assert main(["flash-micropython", str(f), "--port", "/dev/ttyUSB0"]) == 2
    assert "not an ESP firmware image" in capsys.readouterr().err
    assert main(["flash-micropython", str(tmp_path / "missing.uf2")]) == 2
    f = tmp_path / "fw.hex"
    f.write_text(":00000001FF\n")
    assert main(["flash-micropython", str(f)]) == 2


def test_esptool_command_lines(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(flash, "_esptool_run", lambda args, what, timeout=0: calls.append(args) or "")
    img = tmp_path / "ESP32_GENERIC.bin"
    img.write_bytes(bytes([0xE9, 3, 2, 0x20]) + bytes(8) + struct.pack("<H", 0) + bytes(100))
    result = flash.flash_esp(img, "/dev/ttyUSB0")
    assert result["offset"] == "0x1000"
    assert calls[0][-1] == "erase_flash" and calls[0][:2] == ["--chip", "esp32"]
    assert calls[1][-4:] == ["write_flash", "-z", "0x1000", str(img)]
    with pytest.raises(UsageError, match="built for esp32, not esp32s3"):
        flash.flash_esp(img, "/dev/ttyUSB0", chip="esp32s3")
