"""The simulated fleet: `streetnode sim` (the real firmware on the real MicroPython, simulated
sensors) and `streetnode demo`."""
