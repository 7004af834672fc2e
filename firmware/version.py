FW_VERSION = "0.1.0"
# The boot loader version (board root boot.py/main.py) this firmware needs: a release's
# manifest carries it as "loader", and a node whose loader is older refuses the release.
LOADER = 1
