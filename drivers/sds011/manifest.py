metadata(description="Nova Fitness SDS011 driver: particulate matter over UART, query mode, power switching.", version="0.1.0")

# the UART PM sensors' frame reader and recovery (drivers/pm_uart.py)
require("drivers")  # drivers/__init__.py and the registry
require("hal")
module("drivers/pm_uart.py", base_path="../..")
package("drivers/sds011", base_path="../..")
