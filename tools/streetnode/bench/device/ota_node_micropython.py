# Device half of `python -m streetnode.bench.ota`: a sim node booted exactly as
# firmware/main_unix.py boots it (the board's loader, boot.py and main.py, from the slots on
# its simulated flash), with its heap sampled after every loop pass. The normal node has no
# such hook: the sampler wraps node.step from the board's after-boot hook, here only.
#
#   micropython ota_node_micropython.py STATE_DIR [RESET_CAUSE]
#
# After each pass: gc.mem_alloc() as the pass left it (the pass's own garbage included,
# since the previous pass ended with a collection), then gc.collect() and the live
# gc.mem_alloc() and gc.mem_free(). Per OTA state (idle, receiving, verifying, trial, ...)
# the highest of each, with the running version: a line `bench-heap {json}` on stdout (the
# node's log) when the state changes, before a reboot, after a state's 3rd pass and every
# _EVERY passes; the last
# line of each run of a state holds its figures.

import gc
import sys

from firmware import main_unix

_EVERY = 10  # passes between two lines for a state that lasts (the last line of a state counts)


def _sampler(attach):
    def after_boot(node):
        if attach is not None:
            attach(node)
        step = node.step
        rec = {"state": None, "fw": None, "passes": 0, "peak": 0, "live": 0, "free": None}

        def flush():
            import json

            print("bench-heap " + json.dumps(dict(rec, heap=gc.mem_alloc() + gc.mem_free())))

        def sampled():
            wait = step()
            peak = gc.mem_alloc()
            gc.collect()
            live = gc.mem_alloc()
            free = gc.mem_free()
            ota = node.ota
            state = ota.status["state"] if ota is not None else None
            said = False
            if state != rec["state"]:
                if rec["passes"]:
                    flush()
                    said = True
                rec["state"], rec["passes"], rec["peak"], rec["live"], rec["free"] = state, 0, 0, 0, None
                rec["fw"] = ota.fw if ota is not None else None
            rec["passes"] += 1
            if peak > rec["peak"]:
                rec["peak"] = peak
            if live > rec["live"]:
                rec["live"] = live
            if rec["free"] is None or free < rec["free"]:
                rec["free"] = free
            n = rec["passes"]
            if node.reboot_requested or n == 3 or n % _EVERY == 0:
                flush()  # before the reboot of the switch; and now and then (a state that lasts)
                said = True
            if said:
                gc.collect()  # what the line allocated is not the next pass's
            return wait

        node.step = sampled

    return after_boot


if __name__ == "__main__":
    where, attach = main_unix.mount_flash(sys.argv[1])
    cause = sys.argv[2] if len(sys.argv) > 2 else "power_on"
    if not main_unix.boot_loader(where, cause, _sampler(attach)):
        print("bench-heap: no board loader in", sys.argv[1])
        sys.exit(2)
    sys.exit(0)
