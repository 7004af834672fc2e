metadata(description="Bosch BME280/BMP280 driver: forced-mode reading in two bus transactions, datasheet integer compensation.", version="0.1.0")

# hal.clock; installed as drivers/bme280 beside hal/ (paths from the repository root)
require("drivers")  # drivers/__init__.py and the registry
require("hal")
package("drivers/bme280", base_path="../..")
