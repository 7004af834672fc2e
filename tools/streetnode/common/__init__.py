"""What every host command shares: where the device code is, running it on MicroPython,
the pinned device dependencies and the compiled tree, the embedded broker, errors, files."""
