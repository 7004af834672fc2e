metadata(description="Plantower PMS5003 driver: particulate matter over UART, passive or active mode, power switching.", version="0.1.0")

# the UART PM sensors' frame reader and recovery (drivers/pm_uart.py)
require("drivers")  # drivers/__init__.py and the registry
require("hal")
module("drivers/pm_uart.py", base_path="../..")
package("drivers/pms5003", base_path="../..")
