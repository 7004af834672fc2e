# streetnode boot loader (board root). Puts the active firmware slot on sys.path.
#
# Layout on the board's flash (paths relative to the root, which is the cwd at boot):
#   boot.py, main.py   these two loaders; they never change with a firmware version
#   slot               the pointer: "a" or "b", replaced atomically (write slot.tmp, rename)
#   a/, b/             two complete firmware trees (manifest.json, node_main.mpy, firmware/,
#                      drivers/, hal/, lib/); `streetnode deploy` writes only the inactive one
#   data/              the node's own files (config.json, outbox/, state): never touched by
#                      a firmware change, only config.json (and a CA file) by deploy
#   maint              one-shot marker: the next boot stays at the REPL (deploy's maintenance boot)
#
# The pointer switches only after every file of the new slot was copied and verified, so
# a cut at any moment leaves a pointer to a complete tree: the old one or the new one.
import sys


def _read(name):
    try:
        with open(name) as f:
            return f.read().strip()
    except OSError:
        return ""


def _active():
    s = _read("slot")
    if s in ("a", "b"):
        return s
    # FAT refuses to rename onto an existing file, so the pointer is removed first there:
    # a cut in that window leaves only the complete slot.tmp, which is the new pointer.
    s = _read("slot.tmp")
    return s if s in ("a", "b") else None


STREETNODE_SLOT = _active()
if STREETNODE_SLOT:
    sys.path.insert(0, STREETNODE_SLOT + "/lib")
    sys.path.insert(0, STREETNODE_SLOT)
