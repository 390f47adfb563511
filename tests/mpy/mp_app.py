# Differential test: the whole firmware app (link, RAM journal, LEDs, message handling) on a
# board whose UART is a byte buffer, driven by a host-side link endpoint in the same interpreter.
# mp-files: tests/mpy/vm_board.py
import vm_board as board
from smgwfw import link as lk
from smgwfw import messages as m
from smgwfw.app import App, pattern


class Lcg:
    def __init__(self, seed):
        self.x = seed

    def next(self):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return self.x >> 1


host = lk.Link("host", 777, Lcg(9).next, rto_ms=50)
app = App(board)
got = []


def step(ms):
    for _ in range(ms):
        board.now += 1
        app.step(board.now)
        if board.tx:
            host.receive(bytes(board.tx), board.now)
            board.tx[:] = b""
        while True:
            ev = host.next_event()
            if ev is None:
                break
            if ev[0] == lk.EV_MESSAGE:
                got.append(ev[1])
                host.consumed()
            elif ev[0] == lk.EV_UP:
                print("host up, fw board", ev[1][lk.H_INFO]["board"], "boot",
                      ev[1][lk.H_INFO]["boot"])
        while True:
            f = host.poll(board.now)
            if f is None:
                break
            board.rx.extend(f)


def types():
    return [x[m.K_TYPE] for x in got]


step(3500)  # handshake during the 3 s boot blink
print("up", host.up, app.link.up, "types", sorted(set(types())))
host.send({m.K_TYPE: m.T_STATE, m.K_STATE_OP: m.OP_NORMAL, m.K_STATE_WAN: m.WAN_UP_SEAL,
           m.K_STATE_LMC: m.LMC_ADDRESSED, m.K_STATE_INSTALL: False, m.K_STATE_SECURITY: 0})
step(200)
leds = [x for x in got if x[m.K_TYPE] == m.T_LEDS][-1][m.K_LEDS_PATTERNS]
print("leds", leds, "levels", board.levels)
for n in range(1, 21):
    host.send({m.K_TYPE: m.T_LINKTEST, m.K_LT_N: n, m.K_LT_DATA: pattern(n, 40)}, n)
    step(5)
host.send({m.K_TYPE: m.T_LINKTEST_GEN, m.K_LTG_COUNT: 25, m.K_LTG_SIZE: 30})
host.send({m.K_TYPE: 99})
step(1500)
lt = [x for x in got if x[m.K_TYPE] == m.T_LINKTEST]
print("fw->host linktest", len(lt), [x[m.K_LT_N] for x in lt] == list(range(1, 26)),
      all(x[m.K_LT_DATA] == pattern(x[m.K_LT_N], 30) for x in lt))
host.send({m.K_TYPE: m.T_GET_STATUS})
step(200)
rep = [x for x in got if x[m.K_TYPE] == m.T_LINKTEST_REPORT][-1]
print("host->fw linktest", rep[m.K_LTR_RECEIVED], rep[m.K_LTR_LAST], rep[m.K_LTR_OUT_OF_ORDER],
      rep[m.K_LTR_BAD_DATA])
err = [x for x in got if x[m.K_TYPE] == m.T_ERROR][-1]
print("error answer", err[m.K_ERROR_CODE], err[m.K_ERROR_REF])
st = [x for x in got if x[m.K_TYPE] == m.T_STATUS][-1]
print("journal pending", st[m.K_STATUS_OUTBOX][0], "dropped", st[m.K_STATUS_OUTBOX][3])
host.send({m.K_TYPE: m.T_RELEASE})
step(50)
print("release requested", app.release_requested)
print("OK")
