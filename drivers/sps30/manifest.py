metadata(description="Sensirion SPS30 driver: particulate matter over I2C, CRC-checked, sleep and fan cleaning.", version="0.1.0")

# hal.clock, and the Sensirion command set and CRC-8 (drivers/sensirion.py)
require("drivers")  # drivers/__init__.py and the registry
require("hal")
module("drivers/sensirion.py", base_path="../..")
package("drivers/sps30", base_path="../..")
