# The link's message catalogue: what travels inside a DATA frame's CBOR payload.
#
# Every message is a CBOR map with small integer keys (compact on the wire, cheap to parse on the
# device). Key 0 is always the message type; key 1, when present, is the durable record id (rid)
# that lets a receiver drop a copy it has already stored, even across restarts of either side.
# The catalogue is versioned with CATALOGUE_VERSION, announced in HELLO; a peer with another
# version is refused at HELLO time (the session never comes up, and both sides say why). docs/link-protocol.md describes every field in prose.
try:
    from micropython import const
except ImportError:  # CPython: const() is only a compile-time hint on MicroPython

    def const(value):
        return value


CATALOGUE_VERSION = const(1)

# --- keys common to all messages
K_TYPE = const(0)
K_RID = const(1)

# --- message types
T_STATE = const(1)  # host -> fw: the gateway state the LEDs render
T_LEDS = const(2)  # fw -> host: the pattern each LED shows now
T_STATUS = const(3)  # fw -> host: counters, outbox fill, memory (answer to GET_STATUS, or periodic)
T_EVENT = const(4)  # fw -> host: something the firmware wants logged (code + params)
T_ERROR = const(5)  # either way: the answer to a message that could not be handled
T_RECORD = const(6)  # fw -> host, durable: a captured frame from a meter interface
T_LINKTEST = const(7)  # either way, durable: link test payload (counted and checked for order)
T_LINKTEST_GEN = const(8)  # host -> fw: please send COUNT linktest records of SIZE bytes
T_TIME = const(9)  # host -> fw: wall-clock time for timestamping captures
T_GET_STATUS = const(10)  # host -> fw: ask for a STATUS
T_LINKTEST_REPORT = const(11)  # fw -> host: what the firmware's linktest receiver has seen
T_RELEASE = const(12)  # host -> fw: stop, give the port back to the REPL (before flashing)
T_LMN_TX = const(13)  # host -> fw: send an HDLC frame on the wired LMN bus, then listen
T_LMN_RX = const(14)  # fw -> host: an HDLC frame heard on the bus (in a window, or unasked)
T_LMN_DONE = const(15)  # fw -> host: the listen window of an LMN_TX closed

# --- STATE (host -> fw)
K_STATE_OP = const(2)
K_STATE_WAN = const(3)
K_STATE_LMC = const(4)
K_STATE_INSTALL = const(5)
K_STATE_SECURITY = const(6)
K_STATE_WAKEUP = const(7)

OP_BOOT = const(0)  # no host yet (firmware-local; the host never sends it)
OP_STARTING = const(1)
OP_NORMAL = const(2)
OP_RESTRICTED = const(3)
OP_MINIMAL = const(4)
OP_CEASED = const(5)
OP_SOFT_LOCKDOWN = const(6)
OP_MAX = const(6)

WAN_DOWN = const(0)
WAN_CONNECTING = const(1)
WAN_UP_SEAL = const(2)  # TLS up with the seal ("Guetesiegel") certificates only
WAN_UP = const(3)  # TLS up with operational certificates
WAN_MAX = const(3)

LMC_NONE = const(0)
LMC_ADDRESSED = const(1)  # >= 1 wired meter has an HDLC address and the time is valid
LMC_TIME_INVALID = const(2)  # addressed meter(s), but the system time is invalid
LMC_BUS_OVERLOAD = const(3)  # LMN bus supply overload detected
LMC_MAX = const(3)

SEC_NONE = const(0)
SEC_PWR_TLS = const(1)
SEC_PWR_LMC = const(2)
SEC_PWR_TLS_LMC = const(3)
SEC_PWR_WMT = const(4)
SEC_ALL = const(5)  # hard lock-down: all four blink
SEC_MAX = const(5)

# --- LEDS (fw -> host)
K_LEDS_PATTERNS = const(2)  # list of four pattern codes (smgwfw.leds), order PWR, TLS, LMC, wMT

# --- STATUS (fw -> host)
K_STATUS_UPTIME = const(2)  # ms since boot
K_STATUS_COUNTERS = const(3)  # map name -> int (link and app counters)
K_STATUS_OUTBOX = const(4)  # [queued, queued_bytes, capacity_bytes, dropped]
K_STATUS_MEM_FREE = const(5)  # heap bytes free (gc.mem_free) or -1 where unknown

# --- EVENT (fw -> host)
K_EVENT_CODE = const(2)
K_EVENT_PARAMS = const(3)  # list of ints/strings

EV_BOOT = const(1)  # params: [boot_counter, reset_cause]
EV_OUTBOX_DROP = const(2)  # params: [dropped_total, queued_bytes]
EV_STORAGE_ERROR = const(3)  # params: [what]
EV_PEER_ERROR = const(4)  # params: [error_code, detail] the host answered us with ERROR
EV_RADIO_ERROR = const(5)  # params: [error type, detail] the wM-Bus radio could not be started

# --- ERROR (either way)
K_ERROR_CODE = const(2)
K_ERROR_DETAIL = const(3)  # short text
K_ERROR_REF = const(4)  # the offending message's type, or -1 when it had none

ERR_BAD_CBOR = const(1)  # payload is not CBOR of the agreed subset
ERR_NOT_A_MESSAGE = const(2)  # CBOR, but not a map with an integer type
ERR_UNKNOWN_TYPE = const(3)
ERR_BAD_FIELD = const(4)  # a field is missing, of the wrong type or out of range
ERR_NOT_SUPPORTED = const(5)  # known type, but not in this direction / on this board

# --- RECORD (fw -> host, durable)
K_REC_SRC = const(2)  # interface the bytes came from (SRC_*)
K_REC_TICK = const(3)  # firmware ticks_ms at capture
K_REC_TIME = const(4)  # unix time in ms at capture, or None when the firmware has no time yet
K_REC_BODY = const(5)  # the captured bytes
K_REC_META = const(6)  # map of interface-specific facts (crc_ok, rssi, mode ...)

SRC_LINKTEST = const(0)
SRC_LMN_WIRED = const(1)
SRC_LMN_WIRELESS = const(2)

# --- LINKTEST / LINKTEST_GEN / LINKTEST_REPORT
K_LT_N = const(2)  # sequence number within the test stream (starts at 1)
K_LT_DATA = const(3)  # payload bytes
K_LTG_COUNT = const(2)
K_LTG_SIZE = const(3)
K_LTR_RECEIVED = const(2)
K_LTR_LAST = const(3)
K_LTR_OUT_OF_ORDER = const(4)
K_LTR_BAD_DATA = const(5)

# --- TIME (host -> fw)
K_TIME_UNIX_MS = const(2)

# --- LMN_TX / LMN_RX / LMN_DONE (docs/lmn-wired.md section 7; not journalled: link state)
K_LMN_ID = const(2)  # the host's request id (int); None in an LMN_RX outside any window
K_LMN_FRAME = const(3)  # TX, RX: the HDLC frame with both flags
K_LMN_LISTEN = const(4)  # TX: listen window in ms after the end of the transmission (0..5000)
K_LMN_CHECK = const(5)  # RX: the detector's check result by name (smgwfw.lmn.CHECK_NAMES)
K_LMN_AT = const(6)  # RX: ms from the end of the transmission to the frame's first byte
K_LMN_TICK = const(7)  # RX: firmware ticks_ms of the frame's first byte
K_LMN_COUNT = const(8)  # DONE: frames heard in the window
K_LMN_SENT = const(9)  # DONE: False when the frame could not be sent (queue full, UART stuck)
LMN_LISTEN_MAX = const(5000)
