"""`streetnode ota push`: a signed release to nodes over their own MQTT link, in stages.

    streetnode ota push RELEASE_DIR --broker HOST:PORT (--nodes ID,ID | --all)
                        [--canary N] [--batch M] [--max-failures K] [--timeout S] [--json]

The release is checked first (every file against the manifest, the manifest's signature
against the release's fleet.pub when it carries one); nothing is sent otherwise. Then the
first N nodes (the canaries) get it and must confirm; then the rest, M at a time. After K
rejections or rollbacks the rollout stops: the nodes not started on are left alone, and
the failures are named with their reasons. Exit 0 only when every targeted node confirmed.

The exchange with one node (firmware/ota/receiver.py, docs/node.md): an offer on
<prefix>/<node>/ota/offer; the node answers on its retained ota/status with the next piece
it wants ("next": [file index, offset]); each chunk on ota/chunk is answered the same way.
A node that went quiet (a reboot, a broker restart) is offered the release again after a
while and says where it stands: the transfer resumes.
"""

import base64
import hashlib
import json
import struct
import sys
import threading
import time
from pathlib import Path

from streetnode.common import mqtt
from streetnode.common.errors import EXIT_FAILED, EXIT_OK, Failure

CHUNK = 3072  # firmware/ota/receiver.py CHUNK_MAX
MANIFEST_INDEX = 0xFFFF
EXIT_REFUSED = 3  # the release does not verify: nothing sent
RESEND_S = 3.0  # a node quiet this long is offered the release again (it says where it stands)


class Release:
    """A release directory: manifest bytes, signature, the files' bytes by index."""

    def __init__(self, path, verify=True, pubkeys=()):
        """verify False: read it without checking files and signature (tests send broken
        releases this way to see the NODE refuse them)."""
        self.path = Path(path)
        self.pubkeys = list(pubkeys) or ([self.path / "fleet.pub"] if (self.path / "fleet.pub").is_file() else [])
        try:
            self.manifest_bytes = (self.path / "manifest.json").read_bytes()
            self.sig = (self.path / "manifest.sig").read_bytes()
        except OSError as e:
            raise Failure("%s is not a release (manifest.json and manifest.sig, from `streetnode release`): %s"
                          % (path, e.strerror or e), EXIT_REFUSED)  # fmt: skip
        try:
            self.manifest = json.loads(self.manifest_bytes)
            self.version = self.manifest["version"]
            self.target = self.manifest["target"]
            files = self.manifest["files"]
        except (ValueError, KeyError, TypeError) as e:
            raise Failure("%s/manifest.json is not a release manifest: %s" % (path, e), EXIT_REFUSED)
        self.id = hashlib.sha256(self.manifest_bytes).hexdigest()
        self.files = []
        for f in files:
            p = self._file(f["path"])
            data = p.read_bytes() if p is not None else None
            if verify and (data is None or len(data) != f["size"] or hashlib.sha256(data).hexdigest() != f["sha256"]):
                raise Failure("release %s is damaged: %s %s" % (
                    path, f["path"], "is missing" if data is None else "differs from the manifest"), EXIT_REFUSED)
            self.files.append(data)
        if verify:
            self._check_signature()

    def _file(self, rel):
        from streetnode.ota import release as relmod

        for p in (relmod.source(self.path, rel), self.path / rel, self.path / "app" / rel):
            if p.is_file():
                return p
        return None

    def _check_signature(self):
        if len(self.sig) != 64:
            raise Failure("manifest.sig is %d bytes, not a 64-byte Ed25519 signature" % len(self.sig), EXIT_REFUSED)
        from streetnode.ota import release as relmod

        if not self.pubkeys:
            raise Failure("no key to check the release with: --pub FILE (the fleet's fleet.pub)", EXIT_REFUSED)
        try:
            relmod.check(self.path, self.pubkeys)
        except Failure as e:
            raise Failure("%s: nothing sent" % e, EXIT_REFUSED)

    def chunk(self, index, offset):
        data = self.manifest_bytes if index == MANIFEST_INDEX else self.files[index]
        head = struct.pack(">8sHI", bytes.fromhex(self.id[:16]), index, offset)
        return head + data[offset:offset + CHUNK]

    def offer(self):
        return json.dumps({"release": self.id, "size": len(self.manifest_bytes),
                           "sig": base64.b64encode(self.sig).decode()})  # fmt: skip


class NodeRun:
    """One node's update, driven by its ota/status."""

    def __init__(self, node):
        self.node = node
        self.state = "waiting"  # waiting, sending, verifying, trial, confirmed, failed
        self.reason = None
        self.progress = 0
        self.started = None
        self.last_heard = 0.0
        self.last_next = None

    @property
    def done(self):
        return self.state in ("confirmed", "failed")


class Rollout:
    def __init__(self, client, release, prefix, out, as_json, tty):
        self.client = client
        self.release = release
        self.prefix = prefix
        self.out = out
        self.as_json = as_json
        self.tty = tty
        self.lock = threading.Lock()
        self.runs = {}
        self.seen = {}  # node -> last ota/status

    def event(self, node, text):
        if self.as_json:
            return
        line = time.strftime("%H:%M:%S ") + "%s %s" % (node, text)
        if self.tty:
            self.out.write("\r\033[K" + line + "\n")
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def bars(self):
        if not self.tty or self.as_json:
            return
        active = [r for r in self.runs.values() if r.started and not r.done]
        parts = []
        for r in active:
            n = int(r.progress * 20 // 100)
            parts.append("%s [%s%s] %3d%% %s" % (r.node, "#" * n, "." * (20 - n), r.progress, r.state))
        self.out.write("\r\033[K" + "  ".join(parts))
        self.out.flush()

    def on_status(self, node, st):
        with self.lock:
            self.seen[node] = st
            run = self.runs.get(node)
            if run is None or run.started is None or run.done:
                return
            self._advance(run, st)

    def _advance(self, run, st):
        rel = self.release
        run.last_heard = time.monotonic()
        state = st.get("state")
        mine = st.get("release") == rel.id or st.get("version") == rel.version
        if state == "rejected" and st.get("release") == rel.id:
            return self._fail(run, "rejected: %s" % st.get("reason"))
        if state == "rolled_back" and st.get("version") == rel.version:
            return self._fail(run, "rolled back: %s" % st.get("reason"))
        if st.get("fw") == rel.version and state in ("confirmed", "idle", "rejected", "rolled_back"):
            run.state, run.progress = "confirmed", 100
            self.event(run.node, "confirmed %s" % rel.version)
            return
        if not mine:
            return
        if state == "receiving" and st.get("next"):
            if run.state != "sending":
                run.state = "sending"
                self.event(run.node, "receiving %s (from %s)" % (rel.version, st.get("from")))
            nxt = tuple(st["next"])
            run.progress = st.get("progress") or 0
            if nxt != run.last_next:
                run.last_next = nxt
                self.client.publish(self._topic(run.node, "ota/chunk"), rel.chunk(*nxt), qos=1)
        elif state == "verifying" and run.state != "verifying":
            run.state = "verifying"
            self.event(run.node, "verifying")
        elif state == "trial" and st.get("version") == rel.version and run.state != "trial":
            run.state, run.progress = "trial", 100
            self.event(run.node, "on trial (%s)" % (st.get("reason") or "booted the new version"))
        self.bars()

    def _fail(self, run, reason):
        run.state, run.reason = "failed", reason
        self.event(run.node, "FAILED: %s" % reason)

    def _topic(self, node, sub):
        return "%s/%s/%s" % (self.prefix, node, sub)

    def start(self, node):
        with self.lock:
            run = self.runs[node] = NodeRun(node)
            run.started = run.last_heard = time.monotonic()
            st = self.seen.get(node)
            if st and st.get("fw") == self.release.version and st.get("state") != "trial":
                run.state, run.progress = "confirmed", 100
                self.event(node, "already runs %s" % self.release.version)
                return
            self.event(node, "offered %s" % self.release.version)
            self.client.publish(self._topic(node, "ota/offer"), self.release.offer(), qos=1)

    def wait(self, nodes, timeout):
        """Until every node in `nodes` is done (or timed out)."""
        while True:
            with self.lock:
                now = time.monotonic()
                pending = [self.runs[n] for n in nodes if not self.runs[n].done]
                for run in pending:
                    if now - run.started > timeout:
                        self._fail(run, "no confirmation within %ds (last state: %s)" % (timeout, run.state))
                    elif now - run.last_heard > RESEND_S and run.state not in ("trial",):
                        run.last_heard = now
                        run.last_next = None  # the answer to the offer says where it stands
                        self.client.publish(self._topic(run.node, "ota/offer"), self.release.offer(), qos=1)
                if not [r for r in pending if not r.done]:
                    return
            self.bars()
            time.sleep(0.2)


def discover(client_opts, prefix, wait_s=2.0):
    """Node ids with a retained status under prefix."""
    found = set()

    def on_message(c, u, msg):
        parts = msg.topic.split("/")
        if len(parts) == 3 and parts[2] == "status":
            found.add(parts[1])

    c = mqtt.connect(client_opts, None, on_message=on_message, subscribe=[prefix + "/+/status"])
    time.sleep(wait_s)
    mqtt.close(c)
    return sorted(found)


def run(args, out=sys.stdout):
    if args.canary < 0 or args.batch < 1 or args.max_failures < 1 or args.timeout <= 0:
        raise Failure("--canary must be >= 0, --batch and --max-failures >= 1, --timeout > 0", 2)
    release = Release(args.release, pubkeys=args.pub or ())  # refused here: nothing is sent
    opts = mqtt.BrokerOptions.from_args(args)
    nodes = discover(opts, args.prefix) if args.all else [n for n in args.nodes.split(",") if n]
    if not nodes:
        raise Failure("no nodes to update (--nodes ID,ID or --all with nodes on the broker)", 2)
    result = rollout(opts, release, nodes, args.canary, args.batch, args.max_failures, args.timeout,
                     args.prefix, out, args.json)  # fmt: skip
    return EXIT_OK if result["ok"] else EXIT_FAILED


def rollout(opts, release, nodes, canary=1, batch=10, max_failures=1, timeout=900.0, prefix="streetnode",
            out=sys.stdout, as_json=False):
    """Roll `release` out to `nodes` in stages; the outcome per node (and "ok": all confirmed)."""
    tty = out.isatty() if hasattr(out, "isatty") else False
    r = Rollout(None, release, prefix, out, as_json, tty)

    def on_message(c, u, msg):
        parts = msg.topic.split("/")
        try:
            st = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(st, dict) and len(parts) == 4:
            r.on_status(parts[1], st)

    r.client = client = mqtt.connect(opts, None, on_message=on_message, subscribe=[prefix + "/+/ota/status"])
    time.sleep(0.5)  # the retained states first
    stages = []
    if canary:
        stages.append(("canary", nodes[:canary]))
    rest = nodes[canary:]
    for i in range(0, len(rest), batch):
        stages.append(("batch %d" % (i // batch + 1), rest[i:i + batch]))
    halted = None
    try:
        for name, group in stages:
            for n in group:
                r.start(n)
            r.wait(group, timeout)
            failed = [x for x in r.runs.values() if x.state == "failed"]
            if len(failed) >= max_failures:
                halted = "halted after %s: %d failure(s) (--max-failures %d): %s" % (
                    name, len(failed), max_failures, "; ".join("%s %s" % (x.node, x.reason) for x in failed))
                break
    finally:
        mqtt.close(client)
    runs = [r.runs.get(n) for n in nodes]
    result = {
        "release": release.id, "version": release.version,
        "nodes": {n: ({"state": x.state, "reason": x.reason} if x else {"state": "untouched", "reason": None})
                  for n, x in zip(nodes, runs)},
        "halted": halted,
    }  # fmt: skip
    ok = result["ok"] = all(x is not None and x.state == "confirmed" for x in runs)
    if as_json:
        print(json.dumps(result, indent=1, sort_keys=True), file=out)
    else:
        if tty:
            out.write("\r\033[K")
        if halted:
            print(halted, file=out)
        for n in nodes:
            s = result["nodes"][n]
            print("%-12s %-10s %s" % (n, s["state"], s["reason"] or ""), file=out)
        print("%d of %d node(s) confirmed %s" % (sum(1 for x in runs if x and x.state == "confirmed"), len(nodes),
                                                 release.version), file=out)  # fmt: skip
    return result
