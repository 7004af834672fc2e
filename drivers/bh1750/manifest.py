metadata(description="ROHM BH1750FVI driver: one-time or continuous, three resolutions, MTreg sensitivity.", version="0.1.0")

# hal.clock; installed as drivers/bh1750 beside hal/ (paths from the repository root)
require("drivers")  # drivers/__init__.py and the registry
require("hal")
package("drivers/bh1750", base_path="../..")
