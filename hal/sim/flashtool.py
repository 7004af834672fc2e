# The technician's view of a simulated board's flash, run inside MicroPython (the only
# interpreter here that speaks LittleFS): what `mpremote fs` does on a board.
#
#   micropython -m hal.sim.flashtool IMAGE format SIZE
#   micropython -m hal.sim.flashtool IMAGE put HOST_FILE NAME      (NAME inside the flash)
#   micropython -m hal.sim.flashtool IMAGE get NAME HOST_FILE
#   micropython -m hal.sim.flashtool IMAGE pull HOST_DIR [FOLDER]     (every file, or FOLDER's, copied out)
#   micropython -m hal.sim.flashtool IMAGE push HOST_DIR              (a host tree, copied in)
#   micropython -m hal.sim.flashtool IMAGE rm NAME
#   micropython -m hal.sim.flashtool IMAGE ls                      (JSON: path -> size)
#   micropython -m hal.sim.flashtool IMAGE df                      (JSON: size, free, used)
# Exit 0, or 1 with a message; `get` of a missing file exits 2.

import json
import os
import sys

from hal.sim import flash

_MOUNT = "/flash"


def _walk(path, out):
    for entry in os.ilistdir(path):
        name, kind = entry[0], entry[1]
        full = path + "/" + name
        if kind == 0x4000:
            _walk(full, out)
        else:
            out[full[len(_MOUNT) + 1 :]] = os.stat(full)[6]


def _host_files(top, rel):
    out = []
    for entry in os.ilistdir(top + ("/" + rel if rel else "")):
        name = (rel + "/" if rel else "") + entry[0]
        if entry[1] == 0x4000:
            out.extend(_host_files(top, name))
        else:
            out.append(name)
    return out


def _copy(src, dst):
    with open(src, "rb") as a:
        with open(dst, "wb") as b:
            while True:
                chunk = a.read(4096)
                if not chunk:
                    break
                b.write(chunk)


def _makedirs(path):
    """Create the directories above the file `path`."""
    parts = path.split("/")[:-1]
    at = ""
    for i in range(len(parts)):
        at = "/".join(parts[: i + 1])
        if at:
            try:
                os.mkdir(at)
            except OSError:
                pass


def main(argv):
    if len(argv) < 2:
        print("usage: flashtool IMAGE format SIZE | put HOST NAME | get NAME HOST | rm NAME | ls | df")
        return 1
    image, cmd, args = argv[0], argv[1], argv[2:]
    if cmd == "format":
        import vfs

        size = int(args[0])
        flash.create(image, size)
        vfs.VfsLfs2.mkfs(flash.FileFlash(image))
        return 0
    # Only a command that writes may set a damaged image aside and format it afresh.
    dev, report = flash.mount(image, _MOUNT, repair=cmd in ("put", "push", "rm"))
    if report:
        print(report)
    if cmd == "put":
        _makedirs(_MOUNT + "/" + args[1])
        _copy(args[0], _MOUNT + "/" + args[1])
    elif cmd == "get":
        try:
            os.stat(_MOUNT + "/" + args[0])
        except OSError:
            print("no such file on the flash: %s" % args[0])
            return 2
        _copy(_MOUNT + "/" + args[0], args[1])
    elif cmd == "pull":  # every file (or those under the folder args[1]), into the host directory args[0]
        out = {}
        _walk(_MOUNT, out)
        under = args[1].strip("/") + "/" if len(args) > 1 else ""
        for name in out:
            if not name.startswith(under):
                continue
            _makedirs(args[0] + "/" + name)
            _copy(_MOUNT + "/" + name, args[0] + "/" + name)
    elif cmd == "push":  # every file of the host directory args[0], into the flash root
        for name in _host_files(args[0], ""):
            _makedirs(_MOUNT + "/" + name)
            _copy(args[0] + "/" + name, _MOUNT + "/" + name)
    elif cmd == "rm":
        os.remove(_MOUNT + "/" + args[0])
    elif cmd == "ls":
        out = {}
        _walk(_MOUNT, out)
        print(json.dumps(out))
    elif cmd == "df":
        total, free = flash.usage(_MOUNT)
        print(json.dumps({"size": total, "free": free, "used": total - free}))
    else:
        print("unknown command %s" % cmd)
        return 1
    return 0


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
    except (OSError, ValueError, IndexError) as e:
        print("flashtool: %r" % (e,))
        code = 1
    sys.exit(code)
