metadata(description="Sensirion SHT4x driver: a reading in two bus transactions, CRC-checked, heater with its duty-cycle limit.", version="0.1.0")

# hal.clock, and the Sensirion command set and CRC-8 (drivers/sensirion.py)
require("drivers")  # drivers/__init__.py and the registry
require("hal")
module("drivers/sensirion.py", base_path="../..")
package("drivers/sht4x", base_path="../..")
