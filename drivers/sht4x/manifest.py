metadata(
    description="Sensirion SHT4x driver: a reading in two bus transactions, CRC-checked, heater with its duty-cycle limit.",
    version="0.1.0",
)

require("drivers")  # drivers/__init__.py, the registry and drivers/sensirion.py (CRC-8)
require("hal")  # hal.clock
module("drivers/sensirion.py", base_path="../..")
package("drivers/sht4x", base_path="../..")
