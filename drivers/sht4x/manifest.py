metadata(
    description="Sensirion SHT4x driver: a reading in two bus transactions, CRC-checked, heater with its duty-cycle limit.",
    version="0.1.0",
)

# Installed as drivers/sht4x beside hal/ (it uses hal.clock) and drivers/sensirion.py (CRC-8).
package("sht4x", base_path="..", opt=3)
