metadata(
    description="Plantower PMS5003 driver: particulate matter over UART, passive or active mode, power switching.",
    version="0.1.0",
)

require("drivers")
require("hal")
module("drivers/pm_uart.py", base_path="../..")  # the UART sensors' frame reader and recovery
package("drivers/pms5003", base_path="../..")
