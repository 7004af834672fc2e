metadata(
    description="Sensirion SPS30 driver: particulate matter over I2C, CRC-checked, sleep and fan cleaning.",
    version="0.1.0",
)

require("drivers")
require("hal")  # hal.clock
module("drivers/sensirion.py", base_path="../..")  # the Sensirion I2C command set and CRC-8
package("drivers/sps30", base_path="../..")
