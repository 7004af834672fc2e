# The node's own code (device side): runs on MicroPython (ESP32, RP2040, the unix port
# of the simulator) and on CPython (Raspberry Pi gateways, host tests).
