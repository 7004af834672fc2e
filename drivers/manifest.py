metadata(
    description="The drivers package: the driver registry, I2C chip detection and the PM humidity correction.",
    version="0.1.0",
)

require("hal")  # hal.clock (detect's probe timing)
package(
    "drivers",
    files=("__init__.py", "registry.py", "detect.py", "sensirion.py", "pm_correction.py"),
    base_path="..",
)
# Each driver is its own package (drivers/<chip>/manifest.py), required by whoever ships it.
