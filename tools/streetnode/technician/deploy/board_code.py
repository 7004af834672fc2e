"""Code that runs on the board, sent through the raw REPL as text: MicroPython, not the host's
Python (os.ilistdir, 512-byte buffers reused, no exceptions beyond OSError). HELPERS is
executed once per connection; the rest are one-shot statements that call it. The file hash
is the firmware's own (firmware/filehash.py, sent as source: the board may have none yet)."""

from streetnode.common.paths import REPO

HELPERS = (REPO / "firmware" / "filehash.py").read_text() + """\
import os, json
_h = sha256_file
def _walk(p, out, sizes):
    for e in os.ilistdir(p):
        q = p + '/' + e[0]
        if e[1] & 0x4000:
            _walk(q, out, sizes)
        else:
            out[q] = _h(q)
            sizes[q] = os.stat(q)[6]
def _mkdirs(p):
    q = ''
    for part in p.split('/'):
        q = q + '/' + part if q else part
        try:
            os.mkdir(q)
        except OSError:
            pass
def _cp(src, dst):
    b = bytearray(512)
    m = memoryview(b)
    with open(src, 'rb') as f, open(dst, 'wb') as g:
        while True:
            n = f.readinto(b)
            if not n:
                break
            g.write(m[:n])
def _replace(src, dst):
    try:
        os.rename(src, dst)
    except OSError:
        os.remove(dst)  # FAT: no rename onto a file; the readers promote a lone temp
        os.rename(src, dst)
def _rm(p):
    try:
        os.remove(p)
    except OSError:
        pass
def _ex(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False
"""

# Every firmware file of both slots, the loaders and the named data files, hashed on the board;
# the pointer and the free flash. Formatted with the list of data paths.
SURVEY = """\
_out = {}
_sizes = {}
for _top in ('a', 'b'):
    try:
        _walk(_top, _out, _sizes)
    except OSError:
        pass
for _f in ['loader.py', 'boot.py', 'main.py'] + %r:
    try:
        _out[_f] = _h(_f)
    except OSError:
        pass
try:
    with open('slot') as _p:
        _slot = _p.read().strip()
except OSError:
    _slot = None
try:
    _s = os.statvfs('/')
    _free = _s[0] * _s[3]
except (OSError, AttributeError):
    _free = None
print(json.dumps({'slot': _slot, 'files': _out, 'sizes': _sizes, 'free': _free}))
"""


# What the board is: its MicroPython port (sys.platform: esp32, rp2, linux for the unix port)
# and its machine ("Generic ESP32 module with ESP32", "Raspberry Pi Pico W with RP2040").
IDENTIFY = """\
import sys
try:
    _m = os.uname().machine
except (AttributeError, OSError):
    _m = getattr(sys.implementation, '_machine', '')
print(json.dumps({'platform': sys.platform, 'implementation': sys.implementation.name, 'machine': _m}))
"""


def hashes(paths):
    """A statement printing {path: sha256 or None} as JSON for `paths`."""
    return "print(json.dumps({p: (_h(p) if _ex(p) else None) for p in %r}))" % list(paths)


def mkdirs(dirs):
    return "for _d in %r:\n    _mkdirs(_d)" % list(dirs)


def remove(paths):
    return "for _p in %r:\n    _rm(_p)" % list(paths)


def copy(pairs):
    """Copy files on the board itself: [(source, destination)]."""
    return "for _s, _d in %r:\n    _cp(_s, _d)" % list(pairs)


def replace(src, dst):
    return "_replace(%r, %r)" % (src, dst)


def touch(path):
    return "open(%r, 'w').close()" % path


RESET = "import machine\nmachine.reset()"
