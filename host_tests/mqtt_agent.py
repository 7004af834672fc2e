# A node's MQTT link driven line by line from a test, on MicroPython or CPython alike:
#   micropython host_tests/mqtt_agent.py      first stdin line: JSON options for MQTTLink
# (not argv: the unix port from PyPI dies with "FATAL: uncaught NLR" on an argument of
# 256 characters or more, and a DER CA in hex is longer). Then reads one command per line on stdin and answers one line "@@ <json>" on stdout:
#   connect | state | close | quit
#   pub <sub> <qos> <retain 0/1> <payload>      -> {"ok": bool}
#   poll <ms>                                   -> polls for ms, {"cmds": [...], ...state}
#   until <connected|down|failures=N> <ms>      -> polls until the condition or ms passed
#   clear                                       -> forgets the recorded backoff delays
#   pid <n>                                     -> sets umqtt's packet id (wrap-around test)

import json
import sys

from firmware import mqtt
from hal import clock

try:  # CPython: the test harness asks for a traceback (SIGUSR1) before it kills a hung agent
    import faulthandler
    import signal

    faulthandler.register(signal.SIGUSR1)
except ImportError:
    pass

opts = json.loads(sys.stdin.readline())
ca = opts.pop("ca_der_hex", None)
if ca:
    import binascii

    opts["ca_der"] = binascii.unhexlify(ca)
node = opts.pop("node_id")
server = opts.pop("server")
cmds = []
link = mqtt.MQTTLink(node, server, on_cmd=cmds.append, **opts)


def say(d):
    sys.stdout.write("@@ " + json.dumps(d) + "\n")
    if hasattr(sys.stdout, "flush"):
        sys.stdout.flush()


def state():
    return {
        "backend": mqtt.BACKEND,
        "connected": link.connected,
        "reconnects": link.reconnects,
        "failures": link.failures,
        "delays": link.delays,
        "last_error": link.last_error,
        "cmd_dropped": link.cmd_dropped,
    }


def met(cond):
    if cond == "connected":
        return link.connected
    if cond == "down":
        return not link.connected
    if cond.startswith("failures="):
        return link.failures >= int(cond[9:])
    raise ValueError("unknown condition %r" % cond)


def poll_for(ms, cond=None):
    t0 = clock.ticks_ms()
    while clock.ticks_diff(clock.ticks_ms(), t0) < ms:
        link.poll()
        if cond and met(cond):
            return True
        clock.sleep_ms(5)
    return bool(cond and met(cond))


say({"ready": True, "backend": mqtt.BACKEND})
while True:
    line = sys.stdin.readline()
    if not line:
        break
    words = line.strip().split(" ", 4)
    op = words[0]
    if op == "connect":
        say({"ok": link.connect(), "state": state()})
    elif op == "pub":
        ok = link.publish(words[1], words[4].encode(), int(words[2]), words[3] == "1")
        say({"ok": ok, "state": state()})
    elif op == "poll":
        poll_for(int(words[1]))
        got = [c.decode() for c in cmds]
        cmds[:] = []
        say({"cmds": got, "state": state()})
    elif op == "until":
        ok = poll_for(int(words[2]), words[1])
        got = [c.decode() for c in cmds]
        cmds[:] = []
        say({"ok": ok, "cmds": got, "state": state()})
    elif op == "clear":
        link.delays[:] = []
        say({"ok": True})
    elif op == "pid":
        link._be._c.pid = int(words[1])
        say({"ok": True})
    elif op == "state":
        say(state())
    elif op == "close":
        link.close()
        say({"ok": True, "state": state()})
    elif op == "quit":
        say({"ok": True})
        break
    else:
        say({"error": "unknown command %r" % op})
