# Raspberry Pi Pico (RP2040): facts only. smgwfw.mcu.install() validates them and adds the
# board API (link_uart, wait, leds, ticks_ms, nonce, reset_cause, firmware_files, release,
# safe_boot, rs485_facts, radio_facts). Wiring and parts: boards/pico/wiring.md (its pin table
# is checked against this file by tests/boards/test_boards.py). Pin numbers are GPn, not the
# header pin numbers.
BOARD_ID = "pico"
MCU = "RP2040"
MPY_ARCH = "armv6m"  # Cortex-M0+: mpy-cross -march=armv6m
FLASH_BYTES = 2097152  # 2 MiB (W25Q16); ~1.4 MiB of it is MicroPython's littlefs
RAM_BYTES = 270336  # 264 KiB SRAM; the MicroPython heap gets roughly 190 KiB of it
PIN_COUNT = 30  # GP0..GP29
UART_COUNT = 2
REPL_UART = None  # the REPL is on USB CDC
# GP23 SMPS power-save, GP24 VBUS sense, GP29 VSYS/3 ADC: wired on the Pico, not on the header.
# (GP25 is the on-board LED on the Pico; on a Pico W the LED is behind the radio chip.)
RESERVED_PINS = (23, 24, 29)
INPUT_ONLY_PINS = ()
# Shown in the pin table of wiring.md.
PIN_NOTES = {25: "on-board LED: nothing to wire"}
# RP2040 UART pin muxing is fixed: {uart: (TX pins, RX pins)}
UART_PINS = {
    0: ((0, 12, 16, 28), (1, 13, 17, 29)),
    1: ((4, 8, 20, 24), (5, 9, 21, 25)),
}

# The host link on the USB port (/dev/ttyACM0), shared with the REPL: the firmware switches
# Ctrl-C off while it owns the port and gives the port back on the host's RELEASE message.
# A dedicated UART instead (then the host needs a 3.3 V USB-UART adapter; GP8/GP9 are free):
#   LINK_PORT = {"kind": "uart", "id": 1, "tx": 8, "rx": 9, "baudrate": 115200, "rxbuf": 4096}
# (UART1 is RS485's below: move RS485 or the radio first.)
LINK_PORT = {"kind": "usb_cdc", "rxbuf": 256}
# Link parameters (smgwfw.link.Link). rto_ms is where the retransmit timer starts and what it
# backs off from: host auto_rto_ms(115200, 8, 1024) = 1017 ms (docs/configuration.md); the
# measured round trip takes over after the first acknowledgements.
LINK = {"window": 8, "max_payload": 1024, "rto_ms": 1017, "queue_len": 32,
        "queue_bytes": 16384}

# Wired LMN: MAX3485/SP3485 half-duplex transceiver on UART1, DE and /RE tied together on GP6.
RS485 = {"uart": 1, "tx": 4, "rx": 5, "de": 6, "re": None, "de_active_high": True,
         "baud_default": 9600,
         "proto": "sml"}  # "hdlc" for TR-03109 meters (docs/lmn-wired.md)
# Wireless LMN: AMBER AMB8465-M wM-Bus module (868 MHz) on UART0, /RESET on GP2.
RADIO = {"kind": "uart_module", "module": "amb8465", "uart": 0, "tx": 0, "rx": 1, "baud": 9600,
         "reset": 2}

# Status LEDs (pin, active_high): PWR is the on-board LED, the others external via 330 ohm.
LEDS = {
    "PWR": (25, True),
    "TLS": (10, True),
    "LMC": (11, True),
    "wMT": (12, True),
}
# Safe boot: press BOOTSEL within a second after power-up (not while plugging in: that starts
# the ROM bootloader) and the firmware stays out of the way; main.py leaves the REPL free.
SAFE_BOOT = {"kind": "bootsel", "window_ms": 1000}

STORAGE = "/data"  # a directory on the littlefs root filesystem
JOURNAL_BYTES = 262144  # 256 KiB durable outbox (of ~1.4 MiB littlefs)

from smgwfw.mcu import install  # noqa: E402

install(globals())
