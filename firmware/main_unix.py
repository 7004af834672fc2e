# A node on the unix port (or CPython): the firmware as it runs on a board.
#   micropython firmware/main_unix.py STATE_DIR [RESET_CAUSE [ROMFS_IMAGE]]
# With ROMFS_IMAGE (`streetnode sim --romfs`: the compiled tree as `mpremote romfs build`
# makes it) the firmware runs from that image mounted at /rom, its bytecode in place as
# from a board's ROM partition; the unix port has no such partition, so the image is one
# bytearray in the heap (the sim adds its size to --heap). A slot's own files come first on
# sys.path, the image supplies what the slot does not carry.
# When STATE_DIR holds a flash image (flash.img, see hal/sim/flash.py) the node runs on
# a board's flash: the LittleFS in the image, mounted at /flash (the working directory,
# as on a board), with the flash faults of STATE_DIR/flash.json ({"faults": [...],
# "pause_us": n}) switched on and off as the node runs. Without an image the directory
# itself stands in for the flash (a Pi gateway, debugging).
# When the flash holds a board's loader (loader.py, boot.py, main.py and the slots a/, b/,
# as `streetnode sim` installs them) the node boots through it exactly as a board does:
# boot.py picks the slot (and counts a trial), main.py imports node_main from the slot,
# with nothing of the compiled tree this started from left on sys.path or in sys.modules.
# Exit codes: 0 stopped, 3 reboot requested, 4 deep sleep (see firmware/node.py).

import sys

_MOUNT = "/flash"
_ROM = "/rom"
_rom_image = None  # the ROMFS image's bytes, kept for the life of the process


def mount_romfs(path):
    """Mount the ROMFS image file `path` at /rom and put /rom first on sys.path."""
    global _rom_image
    import os
    import vfs

    _rom_image = bytearray(os.stat(path)[6])  # exactly its size: read() would grow a buffer
    with open(path, "rb") as f:
        f.readinto(_rom_image)
    vfs.mount(vfs.VfsRom(_rom_image), _ROM)
    sys.path.insert(0, _ROM)


def _exists(path):
    import os

    try:
        os.stat(path)
        return True
    except OSError:
        return False


def mount_flash(directory):
    """(the node's directory, a function to call with the booted node or None)."""
    from hal.sim import flash

    image = directory.rstrip("/") + "/" + flash.IMAGE_NAME
    if not _exists(image) or sys.implementation.name != "micropython":
        return directory, None
    import json
    import os

    jig_cfg = {}
    if _exists(directory.rstrip("/") + "/flash.json"):
        with open(directory.rstrip("/") + "/flash.json") as f:
            jig_cfg = json.loads(f.read())
    dev, report = flash.mount(image, _MOUNT, pause_us=jig_cfg.get("pause_us", 0))
    if report:
        print(report)
    here = os.getcwd()
    for i in range(len(sys.path)):  # imports from a relative path must survive the chdir
        p = sys.path[i]
        if p[:1] != "/" and p != ".frozen":
            sys.path[i] = here + ("/" + p if p else "")
    for m in list(sys.modules.values()):  # and packages already imported from one
        p = getattr(m, "__path__", None)
        if type(p) is str and p[:1] != "/" and not p.startswith(".frozen"):
            m.__path__ = here + "/" + p
    os.chdir(_MOUNT)
    jig = flash.FlashJig(dev, _MOUNT, jig_cfg.get("faults", ()))
    jig.tick()  # faults from the first moment (a flash already full at boot)

    def attach(node):
        node.flash_report = report
        platform_tick = node._tick

        def tick(now):
            jig.tick(now)
            if platform_tick is not None:
                platform_tick(now)

        node._tick = tick

    return _MOUNT, attach


class _BoardHooks:
    """Imported by the slot's node_main as `streetnode_board`: what the port hands over."""

    def __init__(self, cause, after_boot):
        self.cause = cause
        self.after_boot = after_boot


def boot_loader(where, cause, attach):
    """Run the board's boot.py and main.py from `where` (the flash root). Returns False when
    there is no loader there."""
    import os

    if not _exists(where + "/loader.py") or not _exists(where + "/boot.py"):
        return False
    os.chdir(where)
    # What this process imported to mount the flash is the port's, not the slot's.
    for name in list(sys.modules):
        if name != "__main__" and getattr(sys.modules[name], "__file__", None) is not None:
            del sys.modules[name]
    sys.path[:] = ["", _ROM, ".frozen"] if _rom_image is not None else ["", ".frozen"]
    sys.modules["streetnode_board"] = _BoardHooks(cause, attach)
    for script in ("boot.py", "main.py"):
        with open(script) as f:
            code = compile(f.read(), script, "exec")  # not the source: main.py runs for the node's life
        exec(code, {"__name__": "__main__"})
    return True


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: main_unix.py STATE_DIR [RESET_CAUSE]")
        sys.exit(2)
    if len(sys.argv) > 3:
        mount_romfs(sys.argv[3])
    where, attach = mount_flash(sys.argv[1])
    cause = sys.argv[2] if len(sys.argv) > 2 else "power_on"
    if sys.implementation.name == "micropython" and boot_loader(where, cause, attach):
        sys.exit(0)
    from firmware import node as _node

    sys.exit(_node.main(where, cause, attach))
