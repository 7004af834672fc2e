metadata(description="Sensirion SCD40/SCD41 driver: CO2, temperature and humidity, periodic or single-shot, CRC-checked.", version="0.1.0")

# hal.clock, and the Sensirion command set and CRC-8 (drivers/sensirion.py)
require("drivers")  # drivers/__init__.py and the registry
require("hal")
module("drivers/sensirion.py", base_path="../..")
package("drivers/scd4x", base_path="../..")
