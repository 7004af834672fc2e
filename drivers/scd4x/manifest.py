metadata(
    description="Sensirion SCD40/SCD41 driver: CO2, temperature and humidity, periodic or single-shot, CRC-checked.",
    version="0.1.0",
)

require("drivers")
require("hal")  # hal.clock
module("drivers/sensirion.py", base_path="../..")  # the Sensirion I2C command set and CRC-8
package("drivers/scd4x", base_path="../..")
