metadata(
    description="Bosch BME280/BMP280 driver: forced-mode reading in two bus transactions, datasheet integer compensation.",
    version="0.1.0",
)

require("drivers")  # the drivers package itself (drivers/__init__.py) and the registry
require("hal")  # hal.clock
# From the repository's root: installed as drivers/bme280, beside hal/.
package("drivers/bme280", base_path="../..")
