# Device side of `python -m streetnode.bench.heap`: the whole node (firmware, a simulated
# BME280, the MQTT link to a real broker, the outbox on "flash") run for N sampling
# cycles in this interpreter, in the heap the caller gave it.
#
#   micropython tools/streetnode/bench/device/node_heap_micropython.py run|count NODE_DIR CYCLES [ROMFS_IMAGE]
#
# run:   the collector works as on a board; reports the live heap (after a collection)
#        at each tenth of the run and the highest heap use seen after a loop pass.
# count: the collector is off during each loop pass and the bytes each pass allocates are
#        added up (the node's own health report is kept from collecting; the loop
#        collects between passes instead); the simulator's share is counted apart,
#        since a board has a real chip instead.
#
# Time is virtual (sleeps return at once) so 10 000 cycles take seconds, not hours; the
# broker, the socket and the files are real. Prints one JSON line of figures.

import gc
import sys

if len(sys.argv) > 4:
    # The firmware as a ROMFS image (what `mpremote romfs deploy` puts in a board's ROM
    # partition): imports from it run their bytecode in place. On a board the image is
    # memory-mapped flash; here it is one bytes object, and the caller adds its size to
    # the heap so that the heap around it is the one being measured.
    import os
    import vfs

    _rom = bytearray(os.stat(sys.argv[4])[6])  # exactly its size: read() would grow a buffer
    with open(sys.argv[4], "rb") as f:
        f.readinto(_rom)
    vfs.mount(vfs.VfsRom(_rom), "/rom")
    sys.path.insert(0, "/rom")

import json  # noqa: E402

from hal import clock  # noqa: E402

_vc = clock.install(clock.VirtualClock())

import firmware.node  # noqa: E402 - after the clock, as on a board's main.py


class _CollectorOff:
    """What the node sees as `gc` while passes are counted: its health report collects
    first (to report live bytes), which would hide what the pass allocated."""

    mem_free = staticmethod(gc.mem_free)
    mem_alloc = staticmethod(gc.mem_alloc)

    @staticmethod
    def collect():
        pass


class _Simulator:
    """Counts the heap bytes the simulator allocates (a board has none): the chip model's
    conversions and the platform's fault schedule."""

    def __init__(self, node):
        self.bytes = 0
        chip = node.platform.chips[node.sensors.slots[0].name]
        chip._convert = self._counted(chip._convert)
        node._tick = self._counted(node._tick)

    def _counted(self, fn):
        def counted(arg):
            before = gc.mem_alloc()
            fn(arg)
            self.bytes += gc.mem_alloc() - before

        return counted


def run(node, cycles):
    every = cycles // 10 or 1
    live = [0] * 10  # made before the run: a growing list would count as the node's growth
    taken = 0
    peak = 0
    while node.cycles < cycles:
        wait = node.step()
        a = gc.mem_alloc()
        if a > peak:
            peak = a
        if node.cycles % every == 0 and taken < node.cycles // every and taken < 10:
            gc.collect()
            live[taken] = gc.mem_alloc()
            taken += 1
        clock.sleep_ms(wait)
    return {"live": live[:taken], "peak": peak}


def count(node, cycles):
    firmware.node.gc = _CollectorOff
    sim = _Simulator(node)
    warm = cycles // 10  # the first tenth is warm-up: buffers sized, the socket open
    allocated = passes = 0
    sim_from = None
    biggest = 0
    while node.cycles < cycles:
        if gc.mem_free() < 2 * biggest + 8192:
            gc.collect()  # with the collector off a full heap raises instead of collecting
        gc.disable()
        before = gc.mem_alloc()
        wait = node.step()
        used = gc.mem_alloc() - before
        gc.enable()
        biggest = max(biggest, used)
        if node.cycles > warm:
            if sim_from is None:
                sim_from = (node.cycles - 1, sim.bytes)
            allocated += used
            passes += 1
        clock.sleep_ms(wait)
    n = node.cycles - sim_from[0]
    sim_bytes = sim.bytes - sim_from[1]
    return {
        "per_cycle": allocated / n,
        "sim_per_cycle": sim_bytes / n,
        "firmware_per_cycle": (allocated - sim_bytes) / n,
        "passes_per_cycle": passes / n,
        "biggest_pass": biggest,
    }


def main(mode, directory, cycles):
    gc.collect()
    base = gc.mem_alloc()
    node = firmware.node.Node(directory, cause="power_on").boot()
    gc.collect()
    out = {"mode": mode, "heap_base": base, "heap_booted": gc.mem_alloc()}
    out.update(run(node, cycles) if mode == "run" else count(node, cycles))
    out.update({
        "heap_total": gc.mem_alloc() + gc.mem_free(),
        "cycles": node.cycles, "published": node.published, "pending": node.outbox.pending(),
        "dropped": node.outbox.dropped, "step_errors": node.step_errors,
        "sensor_errors": node.sensors.errors(), "virtual_s": _vc.now_ms // 1000,
        # the config package and every module of it (firmware/node.py _unload)
        "config_module_loaded": [m for m in sys.modules if m.startswith("firmware.config") or m == "hal.sim.schema"] != [],
    })
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
