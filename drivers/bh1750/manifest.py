metadata(
    description="ROHM BH1750FVI driver: one-time or continuous, three resolutions, MTreg sensitivity.",
    version="0.1.0",
)

require("drivers")  # the drivers package itself (drivers/__init__.py) and the registry
require("hal")  # hal.clock
# From the repository's root: installed as drivers/bh1750, beside hal/.
package("drivers/bh1750", base_path="../..")
