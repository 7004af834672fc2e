"""What every target of the bridge (SensorThings, Home Assistant, sensor.community) offers.

    outcome = target.deliver(readings, uncertain)   # {reading.key: None (accepted) or reason}

`uncertain`: the keys that may have reached the target before (a lost answer, a bridge
killed mid-request): a target that can look them up does so before sending them again.
A reading missing from the outcome was not handled: the bridge retries it. A target that
cannot take anything now (down, overloaded, refusing our credentials) raises
TargetUnavailable: the bridge waits with backoff and retries, and the broker keeps the
backlog meanwhile. A reason in the outcome is a permanent refusal of that reading (a 4xx
that retrying cannot cure): it goes to the dead letters.
"""


class TargetUnavailable(Exception):
    """The target cannot take readings now; retry later."""


class Target:
    name = "target"

    def deliver(self, readings, uncertain):
        raise NotImplementedError

    def node_status(self, node, status):
        """A node's retained status message (a dict) arrived."""

    def node_health(self, node, health):
        """A node's health message (a dict) arrived."""

    def close(self):
        pass
