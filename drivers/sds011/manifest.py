metadata(
    description="Nova Fitness SDS011 driver: particulate matter over UART, query mode, power switching.",
    version="0.1.0",
)

require("drivers")
require("hal")
module("drivers/pm_uart.py", base_path="../..")  # the UART sensors' frame reader and recovery
package("drivers/sds011", base_path="../..")
