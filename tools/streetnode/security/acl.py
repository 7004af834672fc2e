"""Who may do what on the fleet's broker: mosquitto password-file lines and ACL blocks, for
one node (`streetnode provision`) and the whole fleet (`streetnode broker-config`), from one
set of functions so that both write the same lines for a node.

A node publishes only to its own `status`, `data`, `health`, `cmd/result` and `ota/status`
and subscribes only to its own `cmd` and `ota/...` topics (the topics of docs/integrator.md);
besides, it may read back its own `status` and `data` (what it wrote itself), so that
`deploy --wait-online` can watch a node with the node's own account, as it does by default.
Operators have a role:

| role     | for                               | may read        | may publish |
| -------- | --------------------------------- | --------------- | ----------- |
| readonly | monitor, report, check, deploy --wait-online | `<prefix>/#` | nothing |
| bridge   | streetnode bridge                 | `<prefix>/#`, `homeassistant/status` | its own status `<prefix>/_bridge/...`, Home Assistant discovery `homeassistant/#` |
| crew     | commands (serve, cmd)             | `<prefix>/#`    | `<prefix>/+/cmd` |
| ota      | ota push / status                 | `<prefix>/#`    | `<prefix>/+/ota/#` |
"""

import base64
import hashlib
import re
import secrets

# What a node publishes and subscribes to, relative to <prefix>/<node>/.
NODE_PUBLISHES = ("status", "data", "health", "cmd/result", "ota/status")
NODE_SUBSCRIBES = ("cmd", "ota/#")
NODE_READS_BACK = ("status", "data")  # deploy --wait-online, with the node's own account
# Topics a node publishes under ota/ besides ota/status (the OTA transfer's own), when it has any.
NODE_OTA_PUBLISHES = ()

HA_PREFIX = "homeassistant"  # the bridge's Home Assistant discovery prefix (its default)

ROLES = {
    "readonly": "monitor, report, check, deploy --wait-online: read the fleet's topics",
    "bridge": "streetnode bridge: read the fleet, publish its own status and Home Assistant discovery",
    "crew": "commands to nodes (serve, cmd): read the fleet, publish <prefix>/+/cmd",
    "ota": "ota push/status: read the fleet, publish <prefix>/+/ota/#",
}
DEFAULT_OPERATORS = (("monitor", "readonly"), ("bridge", "bridge"), ("crew", "crew"), ("ota", "ota"))

_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# mosquitto_passwd's PBKDF2 format (mosquitto >= 2.0): user:$7$iterations$salt$hash with
# SHA-512, 12 salt bytes and 101 iterations, salt and hash in standard base64.
_MOSQ_ITERATIONS = 101
_MOSQ_SALT_BYTES = 12


def mosquitto_hash(password, salt=None):
    """mosquitto_passwd's hash of `password` ($7$: PBKDF2-SHA512), for a password_file."""
    if salt is None:
        salt = secrets.token_bytes(_MOSQ_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _MOSQ_ITERATIONS)
    return "$7$%d$%s$%s" % (_MOSQ_ITERATIONS, base64.b64encode(salt).decode(), base64.b64encode(digest).decode())


def check_user(name):
    """A user name safe in a password file and an ACL line (no ':' or spaces)."""
    if not _USER.match(name or ""):
        raise ValueError("user name %r: use 1-64 of A-Z a-z 0-9 _ . - (starting with a letter or digit)" % (name,))
    return name


def check_prefix(prefix):
    if not prefix or any(c in prefix for c in "+# ") or prefix.startswith("/") or prefix.endswith("/"):
        raise ValueError("topic prefix %r: a topic without wildcards, spaces or a leading/trailing /" % (prefix,))
    return prefix


def passwd_line(user, password_hash):
    """One line of mosquitto's password_file."""
    return "%s:%s\n" % (check_user(user), password_hash)


def node_acl(node_id, prefix="streetnode"):
    """The ACL block of one node (its user name is its id): its own topics, nothing else."""
    base = "%s/%s/" % (check_prefix(prefix), check_user(node_id))
    lines = ["user %s" % node_id]
    lines += ["topic write %s%s" % (base, t) for t in NODE_PUBLISHES + NODE_OTA_PUBLISHES]
    lines += ["topic read %s%s" % (base, t) for t in NODE_SUBSCRIBES + NODE_READS_BACK]
    return "\n".join(lines) + "\n"


def operator_acl(user, role, prefixes=("streetnode",)):
    """The ACL block of an operator account with `role` (see ROLES), for the fleet's prefixes."""
    if role not in ROLES:
        raise ValueError("role %r: one of %s" % (role, ", ".join(ROLES)))
    lines = ["user %s" % check_user(user)]
    for p in prefixes:
        p = check_prefix(p)
        lines.append("topic read %s/#" % p)
        if role == "bridge":
            lines.append("topic write %s/_bridge/#" % p)
        elif role == "crew":
            lines.append("topic write %s/+/cmd" % p)
        elif role == "ota":
            lines.append("topic write %s/+/ota/#" % p)
    if role == "bridge":
        lines += ["topic read %s/status" % HA_PREFIX, "topic write %s/#" % HA_PREFIX]
    return "\n".join(lines) + "\n"
