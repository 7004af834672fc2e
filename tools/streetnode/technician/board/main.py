# streetnode main (board root): run the node from the active slot that boot.py chose.
# A maintenance boot (marker file "maint", removed as it is read, and honoured only after a
# software reset, so a pulled cable never leaves the board idle) stays at the REPL without
# starting the node, so no watchdog runs while `streetnode deploy` copies files.
# A version on trial (loader.py) that fails to start is rolled back at once.
import os

import loader


def _maintenance():
    try:
        os.remove("maint")
    except OSError:
        return False
    # Only a reset by software (deploy's machine.reset()) is a maintenance boot: after a
    # power-on (a cable pulled between the marker and the reset) the node starts as usual.
    try:
        import machine

        return machine.reset_cause() != machine.PWRON_RESET
    except (ImportError, AttributeError):
        return True


if _maintenance():
    print("streetnode: maintenance boot, node not started")
else:
    loader.arm_trial_timer()
    try:
        import node_main  # in the active slot; runs the node and does not return on a board
    except Exception as e:  # noqa: BLE001
        import sys
        import time

        if isinstance(e, ImportError) and "node_main" in str(e) and loader.trial() is None:
            print("streetnode: no firmware installed; deploy one with `streetnode deploy`")
        elif loader.trial() is not None:
            # A new version that cannot start: back to the previous one now, not after K boots.
            sys.print_exception(e)
            loader.rollback("failed to start: %s" % (repr(e)[:120],))
            print("streetnode: trial version failed to start; rolled back, rebooting")
            loader.reset()
        else:
            # A node that cannot start (its loop never lets an exception out, so this is boot)
            # must not sit at the REPL on a lamp post: reboot after a pause, and the boot count
            # in its status shows the loop (`streetnode monitor` alerts on it). Ctrl-C during
            # the pause gives the REPL, as deploy needs.
            sys.print_exception(e)
            print("streetnode: node failed to start; rebooting in 10 s")
            time.sleep(10)
            loader.reset()
