metadata(description="The streetnode node: sampling loop, outbox on flash, MQTT link, config, commands.")

require("hal")
require("drivers")
# The drivers a node can be configured with (drivers/registry.py).
require("drivers.bh1750")
require("drivers.bme280")
require("drivers.pms5003")
require("drivers.scd4x")
require("drivers.sds011")
require("drivers.sht4x")
require("drivers.sps30")
require("umqtt.simple")  # pinned in tools/streetnode/common/deps.py
include("compat/manifest.py")
require("firmware.config")
require("firmware.ota")

package(
    "firmware",
    files=(
        "__init__.py", "atomic.py", "backoff.py", "commands.py", "filehash.py", "logs.py", "mqtt.py", "mqtt_umqtt.py", "net.py", "node.py",
        "outbox.py",
        "payloads.py", "sensors.py", "state.py", "version.py",
    ),
    base_path="..",
)
# Not on a board: firmware/mqtt_paho.py (the Pi gateway's MQTT, on CPython) and
# firmware/main_unix.py (the unix port's entry point: hal/sim/manifest.py).
