# The node's own code (device side): runs on MicroPython (ESP32, RP2040, the unix port
# of the simulator) and on CPython (Raspberry Pi gateways, host tests).

import sys

if sys.implementation.name == "micropython":
    # MicroPython looks for an extensible built-in module (json, os, time, ...) on the file
    # system first at every `import json`, in each directory of sys.path, because it does
    # not keep built-ins in sys.modules: on a node booting from LittleFS that was 26 ms of
    # a 295 ms deep-sleep wake-up (python -m streetnode.bench.deepsleep). Kept there once,
    # each later import of them is a dictionary lookup; the modules are the same objects.
    for _name in ("json", "os", "time", "struct", "errno", "binascii", "select", "socket", "hashlib"):
        if _name not in sys.modules:
            try:
                sys.modules[_name] = __import__(_name)
            except ImportError:  # a port without it: the firmware's own imports say so
                pass
    del _name
