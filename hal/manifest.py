metadata(
    description="The hardware layer on a board: machine.I2C/SPI/UART by bus name, the board table, the clock.",
    version="0.1.0",
)

package("hal", files=("__init__.py", "boards.py", "clock.py", "machine_bus.py"), base_path="..")
# Not on a board: hal/blinka.py (the Pi gateway's adapter, run by CPython) and hal/sim/
# (the simulated board, hal/sim/manifest.py, for the unix target).
