# ESP32-DevKitC with an ESP32-WROOM-32 module: facts only. smgwfw.mcu.install() validates them
# and adds the board API (link_uart, wait, leds, ticks_ms, nonce, reset_cause, firmware_files,
# release, safe_boot, rs485_facts, radio_facts). Wiring and parts: boards/esp32/wiring.md (its
# pin table is checked against this file by tests/boards/test_boards.py). Pin numbers are GPIO
# numbers, as printed on the DevKitC.
BOARD_ID = "esp32-devkitc"
MCU = "ESP32"
MPY_ARCH = "xtensawin"  # mpy-cross -march=xtensawin
FLASH_BYTES = 4194304  # 4 MiB (WROOM-32); about 2 MiB of it is MicroPython's littlefs
RAM_BYTES = 532480  # 520 KiB SRAM; the MicroPython heap gets roughly 110 KiB of it
PIN_COUNT = 40  # GPIO0..GPIO39
UART_COUNT = 3
REPL_UART = 0  # UART0 (GPIO1/GPIO3) goes to the USB-serial chip: the REPL and the flasher
# GPIO1/3 REPL; GPIO6..11 the module's SPI flash; 20, 24, 28..31 do not exist.
# (GPIO16/17 are PSRAM on WROVER modules: this file is for WROOM-32 only.)
RESERVED_PINS = (1, 3, 6, 7, 8, 9, 10, 11, 20, 24, 28, 29, 30, 31)
INPUT_ONLY_PINS = (34, 35, 36, 37, 38, 39)
# Shown in the pin table of wiring.md.
PIN_NOTES = {
    0: "the BOOT button on the DevKitC: nothing to wire; strapping pin",
    2: "strapping pin: must not be high while BOOT is held at reset",
    5: "strapping pin: CSn is an input, the pull-up keeps it high",
    16: "PSRAM on WROVER modules",
    17: "PSRAM on WROVER modules",
}

# The host link on UART2, not on the USB port: UART0 carries the REPL through the USB-serial
# chip, so the host reaches the link through its own 3.3 V USB-UART adapter.
LINK_PORT = {"kind": "uart", "id": 2, "tx": 17, "rx": 16, "baudrate": 115200, "rxbuf": 4096}
# Link parameters (smgwfw.link.Link). rto_ms: host auto_rto_ms(115200, 8, 1024) = 1017 ms
# (docs/configuration.md); the measured round trip takes over after the first acknowledgements.
LINK = {"window": 8, "max_payload": 1024, "rto_ms": 1017, "queue_len": 32,
        "queue_bytes": 16384}

# Wired LMN: MAX3485/SP3485 half-duplex transceiver on UART1 (any pins via the GPIO matrix),
# DE and /RE tied together on GPIO27.
RS485 = {"uart": 1, "tx": 25, "rx": 26, "de": 27, "re": None, "de_active_high": True,
         "baud_default": 9600,
         "proto": "sml"}  # "hdlc" for TR-03109 meters (docs/lmn-wired.md)
# Wireless LMN: CC1101 868 MHz transceiver on VSPI (SPI 2 in MicroPython).
RADIO = {"kind": "spi", "chip": "cc1101", "spi": 2, "sck": 18, "mosi": 23, "miso": 19, "cs": 5,
         "gdo0": 4, "gdo2": 2}

# Status LEDs (pin, active_high): external LEDs via 330 ohm to GND.
LEDS = {
    "PWR": (32, True),
    "TLS": (33, True),
    "LMC": (21, True),
    "wMT": (22, True),
}
# Safe boot: press BOOT (GPIO0, low when pressed) within a second after reset (not during
# reset: that starts the ROM download mode); main.py then leaves the REPL free.
SAFE_BOOT = {"kind": "pin", "pin": 0, "active_low": True, "window_ms": 1000}

STORAGE = "/data"  # a directory on the littlefs root filesystem
JOURNAL_BYTES = 524288  # 512 KiB durable outbox

from smgwfw.mcu import install  # noqa: E402

install(globals())
