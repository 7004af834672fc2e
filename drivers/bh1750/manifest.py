metadata(
    description="ROHM BH1750FVI driver: one-time or continuous, three resolutions, MTreg sensitivity.",
    version="0.1.0",
)

# Installed as drivers/bh1750 beside hal/ (it uses hal.clock).
package("bh1750", base_path="..", opt=3)
