metadata(
    description="Bosch BME280/BMP280 driver: forced-mode reading in two bus transactions, datasheet integer compensation.",
    version="0.1.0",
)

# Installed as drivers/bme280 beside hal/ (it uses hal.clock).
package("bme280", base_path="..", opt=3)
