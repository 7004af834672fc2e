metadata(description="Bridges for what the pinned umqtt imports and MicroPython 1.29 no longer has.")

module("ussl.py")  # `import ussl` in umqtt.simple 1.3.4: MicroPython's ssl under its old name
