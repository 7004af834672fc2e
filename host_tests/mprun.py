# Runs the test_* functions of one device test module inside MicroPython and prints one
# result line per test, for host_tests/test_on_micropython.py to read:
#   @@RESULT {"name": ..., "ok": true|false, "error": "traceback"}
# Usage: micropython host_tests/mprun.py host_tests.device.test_bme280

import io
import json
import sys


def main(modname):
    mod = __import__(modname)
    for part in modname.split(".")[1:]:
        mod = getattr(mod, part)
    # The module's dict, not dir(): MicroPython's dir() leaves out names made at run time
    # (the tests host_tests/device/pm_uart_checks.py registers), as they are no qstrs.
    names = sorted(n for n in mod.__dict__ if n.startswith("test_"))
    failed = 0
    for name in names:
        fn = getattr(mod, name)
        try:
            # Only plain functions that run when called (host_tests/test_on_micropython.py
            # refuses the other shapes): a class, or a generator that would "pass" unrun.
            if type(fn).__name__ not in ("function", "closure"):
                raise TypeError("%s is a %s, not a plain test function" % (name, type(fn).__name__))
            r = fn()
            if r is not None:
                raise TypeError("%s returned %r: a generator or coroutine is never run here" % (name, r))
            print("@@RESULT " + json.dumps({"name": name, "ok": True}))
        except Exception as e:  # report every failure, keep running the others
            failed += 1
            buf = io.StringIO()
            sys.print_exception(e, buf)
            print("@@RESULT " + json.dumps({"name": name, "ok": False, "error": buf.getvalue()}))
    print("@@DONE %d %d" % (len(names), failed))


main(sys.argv[1])
