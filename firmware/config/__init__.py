# The node's config file, config.json in the node's directory on flash: what it may
# hold and how it is checked (schema.py, which documents every key), the bounded JSON
# parser for untrusted bytes (parse.py), the error messages with their key paths and
# "did you mean" (messages.py), the generic checks (checks.py), the file and its
# last-good copy (files.py) and remote merge patches (merge.py). The "sim" section of a
# simulated node is the simulator's own (hal/sim/schema.py), loaded only for one.
#
#   from firmware import config
#   cfg, error = config.load("/data")     # config.json, or the last good one and why
#   new = config.patch(cfg, {"interval_s": 30})
#   config.save("/data", new)
#
# The node loads this package for boot and config changes only, and lets it go again
# (firmware/node.py _load/_unload): it is not in a small board's heap while the node runs.

from firmware.config.files import CONFIG_FILE, GOOD_FILE, load, save
from firmware.config.merge import patch
from firmware.config.messages import ConfigError
from firmware.config.messages import show as _show  # noqa: F401 (the tests' spelling of a value)
from firmware.config.parse import MAX_BYTES, MAX_CONTAINERS, MAX_DEPTH, error_at, parse_json
from firmware.config.schema import BOARDS, MAX_SENSORS, validate
