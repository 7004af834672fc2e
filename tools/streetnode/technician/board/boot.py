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
#   loader.py          the loader's library: pointer, trial marker, rollback (LOADER_VERSION)
#   trial              while a version installed over the air is on trial (see loader.py)
#
# The pointer switches only after every file of the new slot was copied and verified, so
# a cut at any moment leaves a pointer to a complete tree: the old one or the new one.
# An update over the air (firmware/ota/) writes the inactive slot the same way and then
# switches on TRIAL: each boot of the trial is counted here, and after the config's
# ota.trial_boots boots without confirmation the pointer goes back to the previous slot.
import loader

STREETNODE_SLOT = loader.boot()
