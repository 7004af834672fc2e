"""Benchmarks: the host halves here, the halves that run inside MicroPython in device/."""
