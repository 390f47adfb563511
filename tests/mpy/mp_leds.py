# Differential test: the LED pattern engine under MicroPython and CPython must print the same
# transcript. A fixed scenario (boot, start-up, normal operation, wake-up, wM-Bus flashes,
# install, soft lock-down, security patterns, link loss) is played twice: once from t=0 and once
# just before the 2**30 ms counter wraps. tick() is sampled on a fixed grid; a line is printed
# per sample, plus the pattern codes whenever they change.
from smgwfw import leds
from smgwfw import messages as m

MASK30 = 0x3FFFFFFF
STEP = 25  # ms between samples

# (time offset ms, action, args)
SCENARIO = (
    (3500, "state", (m.OP_STARTING, m.WAN_CONNECTING, m.LMC_NONE, False, m.SEC_NONE)),
    (4210, "flash", ()),
    (4300, "flash", ()),
    (5000, "state", (m.OP_STARTING, m.WAN_UP_SEAL, m.LMC_TIME_INVALID, False, m.SEC_NONE)),
    (6500, "state", (m.OP_NORMAL, m.WAN_UP, m.LMC_ADDRESSED, False, m.SEC_NONE)),
    (7000, "wakeup", ()),
    (7600, "flash", ()),
    (10500, "state", (m.OP_NORMAL, m.WAN_UP, m.LMC_ADDRESSED, True, m.SEC_NONE)),
    (12000, "state", (m.OP_SOFT_LOCKDOWN, m.WAN_UP, m.LMC_BUS_OVERLOAD, False, m.SEC_NONE)),
    (14500, "state", (m.OP_RESTRICTED, m.WAN_DOWN, m.LMC_ADDRESSED, False, m.SEC_NONE)),
    (15500, "state", (m.OP_NORMAL, m.WAN_UP, m.LMC_ADDRESSED, False, m.SEC_PWR_TLS)),
    (16000, "state", (m.OP_NORMAL, m.WAN_UP, m.LMC_ADDRESSED, False, m.SEC_PWR_LMC)),
    (16500, "state", (m.OP_NORMAL, m.WAN_UP, m.LMC_ADDRESSED, False, m.SEC_PWR_TLS_LMC)),
    (17000, "state", (m.OP_NORMAL, m.WAN_UP, m.LMC_ADDRESSED, False, m.SEC_PWR_WMT)),
    (17500, "state", (m.OP_CEASED, m.WAN_UP, m.LMC_ADDRESSED, False, m.SEC_NONE)),
    (18000, "lost", ()),
    (18500, "state", (m.OP_NORMAL, m.WAN_UP, m.LMC_ADDRESSED, False, m.SEC_NONE)),
    (19000, "lost", ()),
    (19400, "flash", ()),
    (19800, "bad", (m.OP_MAX + 1, 0, 0, False, 0)),
    (19900, "bad", (0, 0, 0, 2, 0)),
    (20000, "end", ()),
)


def pats_text(e):
    p = e.patterns()
    return "%d,%d,%d,%d" % (p[0], p[1], p[2], p[3])


def play(t0, label):
    print("run", label, "t0=%d" % t0)
    e = leds.LedEngine(t0)
    print("pats", pats_text(e))
    i = 0
    off = 0
    while True:
        at, what, args = SCENARIO[i]
        while off < at:
            mask = e.tick((t0 + off) & MASK30)
            line = "t=%d mask=%d" % (off, mask)
            if e.changed:
                line += " pats=" + pats_text(e)
            print(line)
            off += STEP
        now = (t0 + at) & MASK30
        if what == "state":
            e.set_state(args[0], args[1], args[2], args[3], args[4], now)
        elif what == "flash":
            e.flash_wmt(now)
        elif what == "wakeup":
            e.wakeup(now)
        elif what == "lost":
            e.link_lost(now)
        elif what == "bad":
            try:
                e.set_state(args[0], args[1], args[2], args[3], args[4], now)
                print("bad accepted?!")
            except ValueError:
                print("t=%d bad rejected" % at)
        else:
            break
        if e.changed:
            print("t=%d %s pats=%s" % (at, what, pats_text(e)))
        i += 1


def no_alloc_check():
    # Under MicroPython, tick() must not touch the heap: run it with the heap locked across
    # boot end, wake-up end, flash end and the counter wrap. CPython has no heap lock; it prints
    # the same verdict so the transcripts stay identical.
    try:
        import micropython

        lock = micropython.heap_lock
        unlock = micropython.heap_unlock
    except (ImportError, AttributeError):
        print("noalloc ok")
        return
    t = MASK30 - 5000
    e = leds.LedEngine(t)
    e.set_state(m.OP_SOFT_LOCKDOWN, m.WAN_CONNECTING, m.LMC_TIME_INVALID, True, 0, t + 1000)
    e.wakeup(t + 1500)
    e.flash_wmt(MASK30 - 100)
    n = 0
    bad = -1
    lock()
    while n < 8000:
        try:
            e.tick(t)
        except MemoryError:
            bad = t
            break
        t = 0 if t == MASK30 else t + 1
        n += 1
    unlock()
    print("noalloc ok" if bad < 0 else "noalloc FAIL at %d" % bad)


for code in range(leds.P_MAX + 2):
    print("name", code, leds.pattern_name(code))
print("diff", leds._diff(5, MASK30 - 4), leds._diff(MASK30 - 4, 5), leds._diff(0x20000000, 0))
play(0, "zero")
play(MASK30 - 9876, "wrap")
no_alloc_check()
print("OK")
