metadata(
    description="The simulated unix-sim board: chip models, buses, a street's air, scheduled faults.",
    version="0.1.0",
)

require("hal")
require("drivers")  # the registry names the chip model of each driver
require("firmware")
package("hal/sim", base_path="../..")
module("firmware/main_unix.py", base_path="../..")  # the node's entry point on the unix port
