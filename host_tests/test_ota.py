"""Updates over the air end to end: a sim fleet of 3 nodes (the real firmware on the real
MicroPython, each booting through the board's loader from its own slots on its LittleFS
flash), a real mosquitto, releases signed with `cryptography`, `streetnode ota push`.

One fleet for the whole module (the tests run in order and each says what the fleet runs
after it): 0.2.0 everywhere after the rollout, then refusals, broken chunks, a release
that fails at import (canary halts the rollout), one that never connects (rolled back
after trial_timeout_s), and power cuts during a transfer."""

import json
import random
import shutil
import struct
import subprocess
import sys
import threading
import time

import pytest

from host_tests import otakit
from streetnode.common import broker as _broker
from streetnode.common import mqtt
from streetnode.ota import push as pushmod

TRIAL_TIMEOUT_S = 25
NODES = ("sim-1", "sim-2", "sim-3")


@pytest.fixture(scope="module")
def ota(tmp_path_factory):
    if not _broker.find_mosquitto():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); CI installs it")
    tmp = tmp_path_factory.mktemp("ota")
    with _broker.Broker("mosquitto") as b:
        key, pub = otakit.new_key(tmp)
        fleet = otakit.OtaFleet(tmp, b, 3, key, ota={"confirm_cycles": 3, "trial_boots": 3,
                                                     "trial_timeout_s": TRIAL_TIMEOUT_S})  # fmt: skip
        col = otakit.Collector(b)
        stop = threading.Event()
        fleet.start()
        sup = threading.Thread(target=fleet.supervise, args=(stop,), daemon=True)
        sup.start()
        kit = type("Kit", (), {})()
        kit.tmp, kit.broker, kit.key, kit.pub, kit.fleet, kit.col = tmp, b, key, pub, fleet, col
        kit.opts = mqtt.BrokerOptions(b.host, b.port)
        try:
            col.wait(lambda c: all(n in c.ota and c.status.get(n, {}).get("state") == "online" for n in NODES),
                     60, "the fleet online")  # fmt: skip
            yield kit
        finally:
            stop.set()
            fleet.stop()
            col.close()


def _release(kit, version, **kw):
    return otakit.make_release(kit.fleet.bundle, kit.tmp / ("rel-" + version), kit.key, version, **kw)


def _push_cli(kit, rel, *args):
    return subprocess.run([sys.executable, "-m", "streetnode.cli", "ota", "push", str(rel), "--broker",
                           "%s:%d" % (kit.broker.host, kit.broker.port)] + list(args),
                          capture_output=True, text=True, timeout=400)  # fmt: skip


def _push_unchecked(kit, rel, nodes, timeout=90, canary=0):
    """The sender without the host's checks: what a broken or forged release does on the node."""
    return pushmod.rollout(kit.opts, pushmod.Release(rel, verify=False), list(nodes), canary=canary, batch=3,
                           timeout=timeout, out=open("/dev/null", "w"))  # fmt: skip


def _fw(kit, node):
    return kit.col.status.get(node, {}).get("fw")


def _no_loss(kit, nodes=NODES):
    kit.col.wait(lambda c: all(c.seqs.get(n) and not otakit_missing(c, n) for n in nodes), 90, "every seq delivered")


def otakit_missing(c, node):
    s = c.seqs.get(node, set())
    return set(range(1, max(s) + 1)) - s if s else {0}


def test_rollout_to_three_nodes_with_one_canary(ota):
    rel = _release(ota, "0.2.0")
    shutil.copy(ota.pub, rel / "fleet.pub")  # the host checks the signature with it
    r = _push_cli(ota, rel, "--nodes", ",".join(NODES), "--canary", "1", "--batch", "2", "--timeout", "120")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    # the canary confirmed before the batch was offered
    first_batch_offer = min(i for i, l in enumerate(lines) if "offered" in l and "sim-1" not in l)
    assert any("sim-1 confirmed" in l for l in lines[:first_batch_offer]), r.stdout
    ota.col.wait(lambda c: all(c.ota.get(n, {}).get("state") == "confirmed" and c.ota[n].get("fw") == "0.2.0"
                               for n in NODES), 30, "all confirmed")  # fmt: skip
    ota.col.wait(lambda c: all(c.status.get(n, {}).get("fw") == "0.2.0" for n in NODES), 30, "status fw")
    _no_loss(ota)
    st = subprocess.run([sys.executable, "-m", "streetnode.cli", "ota", "status", "--broker",
                         "%s:%d" % (ota.broker.host, ota.broker.port), "--json"], capture_output=True, text=True)  # fmt: skip
    doc = json.loads(st.stdout)
    assert {n: (doc[n]["fw"], doc[n]["state"]) for n in NODES} == {n: ("0.2.0", "confirmed") for n in NODES}


def test_the_host_refuses_a_damaged_or_forged_release_and_sends_nothing(ota):
    rel = _release(ota, "0.9.0")
    shutil.copy(ota.pub, rel / "fleet.pub")
    target = rel / "bundle" / "app" / "firmware" / "node.mpy"
    data = bytearray(target.read_bytes())
    data[100] ^= 1
    target.write_bytes(bytes(data))
    r = _push_cli(ota, rel, "--nodes", "sim-1")
    assert r.returncode == 3 and "differs" in r.stderr, r.stdout + r.stderr
    other, _ = otakit.new_key(ota.tmp / "rel-0.9.0")  # overwrites fleet.pub with another key
    rel = _release(ota, "0.9.1")
    (rel / "fleet.pub").write_text(otakit.pubkey_b64(other))
    r = _push_cli(ota, rel, "--nodes", "sim-1")
    assert r.returncode == 3 and "signature" in r.stderr, r.stdout + r.stderr
    assert ota.col.ota["sim-1"].get("release") is None  # nothing was offered


@pytest.mark.parametrize("how", ["byte changed after signing", "another key", "manifest edited"])
def test_the_node_rejects_what_does_not_verify_and_keeps_running(ota, how):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    version = {"byte changed after signing": "0.3.1", "another key": "0.3.2", "manifest edited": "0.3.3"}[how]
    if how == "another key":
        rel = otakit.make_release(ota.fleet.bundle, ota.tmp / ("rel-" + version), Ed25519PrivateKey.generate(), version)
    else:
        rel = _release(ota, version)
    if how == "byte changed after signing":
        p = rel / "bundle" / "app" / "firmware" / "sensors.mpy"
        data = bytearray(p.read_bytes())
        data[10] ^= 0x40
        p.write_bytes(bytes(data))
    elif how == "manifest edited":
        m = (rel / "manifest.json").read_bytes().replace(b'"allow_downgrade":false', b'"allow_downgrade":true ')
        (rel / "manifest.json").write_bytes(m)
    seq_before = max(ota.col.seqs["sim-1"])
    result = _push_unchecked(ota, rel, ["sim-1"])
    assert not result["ok"]
    reason = result["nodes"]["sim-1"]["reason"]
    want = "differs from the manifest" if how == "byte changed after signing" else "bad signature"
    assert reason.startswith("rejected") and want in reason, reason
    assert ota.col.ota["sim-1"]["state"] == "rejected" and ota.col.ota["sim-1"]["fw"] == "0.2.0"
    ota.col.wait(lambda c: max(c.seqs["sim-1"]) > seq_before + 2, 30, "sim-1 still sampling")
    assert _fw(ota, "sim-1") == "0.2.0"


def test_broken_chunks_are_ignored_and_a_push_then_completes(ota):
    rel = _release(ota, "0.3.0")
    r = pushmod.Release(rel, pubkeys=[ota.pub])
    c = mqtt.connect(ota.opts, None)
    topic = "streetnode/sim-2/ota/"
    try:
        c.publish(topic + "offer", r.offer(), qos=1)
        ota.col.wait(lambda k: k.ota["sim-2"].get("state") == "receiving" and k.ota["sim-2"].get("release") == r.id,
                     30, "sim-2 receiving")  # fmt: skip
        good = r.chunk(pushmod.MANIFEST_INDEX, 0)
        other = struct.pack(">8sHI", b"\x01" * 8, pushmod.MANIFEST_INDEX, 0) + good[14:]
        junk = [
            good[:5],  # truncated below the header
            other,  # another release's chunk in the middle
            good[:14] + b"x" * 3500,  # oversized (over CHUNK_MAX, within the link's 4096-byte limit)
            struct.pack(">8sHI", bytes.fromhex(r.id[:16]), pushmod.MANIFEST_INDEX, 3072) + b"y" * 100,  # out of order
            struct.pack(">8sHI", bytes.fromhex(r.id[:16]), 7, 0) + b"z" * 100,  # a file before the manifest
        ]
        for j in junk:
            c.publish(topic + "chunk", j, qos=1)
        c.publish(topic + "chunk", good, qos=1)
        c.publish(topic + "chunk", good, qos=1)  # repeated
        ota.col.wait(lambda k: k.ota["sim-2"].get("ignored", 0) >= 6, 30, "the broken chunks counted")
    finally:
        mqtt.close(c)
    assert ota.col.status["sim-2"]["state"] == "online"
    result = pushmod.rollout(ota.opts, r, ["sim-2"], canary=0, timeout=120, out=open("/dev/null", "w"))
    assert result["ok"], result
    ota.col.wait(lambda k: k.status["sim-2"].get("fw") == "0.3.0", 30, "sim-2 on 0.3.0")


def test_a_canary_that_fails_at_import_is_rolled_back_and_halts_the_rollout(ota):
    broken = otakit.compile_module("raise RuntimeError('broken at import')\n", "node_main", ota.tmp)
    rel = _release(ota, "0.4.0", replace={"node_main.mpy": broken})
    ota3 = dict(ota.col.ota["sim-3"])
    result = _push_unchecked(ota, rel, ["sim-2", "sim-3"], canary=1, timeout=120)
    assert not result["ok"]
    assert result["nodes"]["sim-2"]["state"] == "failed"
    assert "rolled back" in result["nodes"]["sim-2"]["reason"] and "failed to start" in result["nodes"]["sim-2"]["reason"]
    assert result["nodes"]["sim-3"]["state"] == "untouched" and result["halted"]
    ota.col.wait(lambda k: k.status["sim-2"].get("fw") == "0.3.0" and k.status["sim-2"]["state"] == "online",
                 30, "sim-2 back on 0.3.0")  # fmt: skip
    assert ota.col.ota["sim-3"] == ota3 and _fw(ota, "sim-3") == "0.2.0"
    _no_loss(ota, ["sim-2"])


def test_a_release_that_never_connects_is_rolled_back_after_the_trial_timeout(ota):
    silent = otakit.compile_module(
        "from firmware import mqtt\n"
        "mqtt.MQTTLink.connect = lambda self: False\n"  # runs, samples, never reaches the broker
        "from firmware.node import main\n"
        "import sys\n"
        "rc = main('data')\n"
        "if rc:\n    sys.exit(rc)\n", "node_main", ota.tmp)  # fmt: skip
    rel = _release(ota, "0.5.0", replace={"node_main.mpy": silent})
    result = _push_unchecked(ota, rel, ["sim-3"], timeout=TRIAL_TIMEOUT_S + 90)
    reason = result["nodes"]["sim-3"]["reason"]
    assert "rolled back" in reason and "within %d s" % TRIAL_TIMEOUT_S in reason, result
    ota.col.wait(lambda k: k.status["sim-3"].get("fw") == "0.2.0", 30, "sim-3 back on 0.2.0")
    _no_loss(ota, ["sim-3"])  # the readings of the silent trial arrive from the outbox


def test_power_cuts_during_transfer_verification_and_switch_leave_a_complete_version(ota):
    rel = _release(ota, "0.6.0")
    release = pushmod.Release(rel, pubkeys=[ota.pub])
    node = ota.fleet.nodes["sim-1"]
    seen_fw = set()
    boots = {"n": 0}
    stop = threading.Event()
    rng = random.Random(14)

    def cut():
        kills = 0
        while not stop.is_set() and kills < 6:
            time.sleep(rng.uniform(0.5, 2.5))
            st = ota.col.ota.get("sim-1", {})
            if st.get("state") == "trial" and kills >= 5:
                break
            if node.proc is not None and node.proc.poll() is None:
                node.proc.kill()  # SIGKILL: a power cut
                kills += 1
        boots["n"] = kills

    t = threading.Thread(target=cut, daemon=True)

    def watch():
        while not stop.is_set():
            fw = ota.col.status.get("sim-1", {}).get("fw")
            if fw:
                seen_fw.add(fw)
            time.sleep(0.05)

    w = threading.Thread(target=watch, daemon=True)
    w.start()
    t.start()
    try:
        result = pushmod.rollout(ota.opts, release, ["sim-1"], canary=0, timeout=240, out=open("/dev/null", "w"))
    finally:
        stop.set()
        t.join()
    if not result["ok"]:  # cut in the trial too often (trial_boots): rolled back; a later push completes
        result = pushmod.rollout(ota.opts, release, ["sim-1"], canary=0, timeout=240, out=open("/dev/null", "w"))
    assert result["ok"], result
    assert boots["n"] >= 3
    assert seen_fw <= {"0.2.0", "0.6.0"}, seen_fw  # never anything but a complete version
    ota.col.wait(lambda k: k.status["sim-1"].get("fw") == "0.6.0", 30, "sim-1 on 0.6.0")
    _no_loss(ota)
