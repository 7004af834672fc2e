"""`streetnode bridge` into a real SensorThings API v1.1 server (django-ogc-sensorthings on
SQLite, served by uvicorn on loopback), from a real mosquitto: every seq of every node becomes
exactly one Observation, through a server outage, a SIGKILLed bridge, refused readings and
malformed messages. Readings are read back through the server's REST API."""

import json
import threading
import time

import pytest
import requests

from host_tests.bridgekit import (T0, BridgeProc, Feeder, Publisher, bridge_status, get_all, observations, seq_counts,
                                  unix, values, wait_for)  # fmt: skip
from streetnode.common.broker import Broker, find_mosquitto

import sensorthings  # noqa: E402,F401 - django-ogc-sensorthings, pinned in the test extra: missing, it fails
from streetnode.integrator.sta_server import StaServer  # noqa: E402

OUTAGE_S = 60  # the SensorThings server down mid-run, while the fleet goes on publishing


@pytest.fixture(scope="module")
def broker():
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); CI installs it")
    # persistence: mosquitto queues without limit for a persistent session (max_queued_messages 0)
    with Broker("mosquitto", persistence=True) as b:
        yield b


@pytest.fixture(scope="module")
def sta():
    with StaServer() as s:
        yield s


class Outage(threading.Thread):
    """The outage run, in the background while the other tests of this module run: its own
    SensorThings server (own database, own port) and bridge, a fake fleet publishing
    throughout; the server stopped for OUTAGE_S mid-run, then started again."""

    nodes = ["out-1", "out-2"]

    def __init__(self, broker, directory):
        super().__init__(daemon=True)
        self.broker = broker
        self.dir = directory
        self.error = None
        self.last = None
        self.sta = StaServer(directory / "sta")
        self.bridge = None
        self.stopped_at = None
        self.done = threading.Event()
        self.release = threading.Event()

    def run(self):
        pub = feeder = None
        try:
            self.sta.start()
            self.bridge = BridgeProc(self.broker, self.dir / "bridge", ["sensorthings=" + self.sta.url], "--name",
                                     "outage").start()  # fmt: skip
            pub = Publisher(self.broker)
            feeder = Feeder(pub, self.nodes, rate=10)
            feeder.start()
            try:
                wait_for(lambda: len(seq_counts(observations(self.sta.url, "out-1"))) >= 20, 60, "readings flowing")
                self.sta.stop()
                self.stopped_at = feeder.seq
                time.sleep(OUTAGE_S)
                resumed_at = feeder.seq
                self.sta.start()
                # until readings published after the server came back are there: the bridge resumed
                wait_for(lambda: max(seq_counts(observations(self.sta.url, "out-1")) or [0]) > resumed_at, 90,
                         "readings after the outage at the server")  # fmt: skip
            finally:
                self.last = feeder.stop()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            self.error = e
        finally:
            if pub is not None:
                pub.close()
            self.done.set()
        # The server's process dies with the thread that started it (PR_SET_PDEATHSIG):
        # this thread lives until the module is done with it.
        self.release.wait()

    def close(self):
        self.release.set()
        self.join(OUTAGE_S + 180)
        if self.bridge is not None:
            self.bridge.stop()
        self.sta.close()


@pytest.fixture(scope="module", autouse=True)
def outage(broker, tmp_path_factory):
    """Started with the module's first test, checked by its last."""
    run = Outage(broker, tmp_path_factory.mktemp("outage"))
    run.start()
    yield run
    run.close()


@pytest.fixture
def pub(broker):
    p = Publisher(broker)
    yield p
    p.close()


def exactly_once(url, node, last_seq, quantities=("temperature", "humidity", "pressure")):
    obs = observations(url, node)
    for q in quantities:
        counts = seq_counts(obs, q)
        missing = [s for s in range(1, last_seq + 1) if s not in counts]
        twice = {s: c for s, c in counts.items() if c > 1}
        assert not missing and not twice, "%s %s: missing %s, more than once %s" % (node, q, missing[:20], twice)
        assert sorted(counts) == list(range(1, last_seq + 1))
    return obs


def wait_all(url, node, last_seq, timeout=120, q="temperature"):
    wait_for(lambda: len(seq_counts(observations(url, node), q)) >= last_seq, timeout,
             "%s seq 1..%d at the server" % (node, last_seq))  # fmt: skip


def test_sim_nodes_every_seq_becomes_one_observation(broker, sta, mpy_tree, tmp_path):
    """3 real nodes (the firmware on MicroPython, simulated BME280s): what they published is
    at the server once each, same values and times, in the right Datastream; entities from
    the register (a Location where it has one) and from the messages alone."""
    from host_tests.fleet import Collector, NodeRunner, node_config

    reg = tmp_path / "fleet-register.csv"
    reg.write_text("id,site,lat,lon,board,sensors,firmware,date\n"
                   "simb-1,Koblenzer Strasse 12,50.8748,8.0243,unix-sim,air:bme280@i2c0,0.1.0,2026-12-01T00:00:00Z\n"
                   "simb-2,,,,unix-sim,air:bme280@i2c0,0.1.0,2026-12-01T00:00:00Z\n")  # simb-3: not registered
    bridge = BridgeProc(broker, tmp_path / "bridge", ["sensorthings=" + sta.url], "--register", str(reg),
                        "--name", "sim").start()  # fmt: skip
    collector = Collector(broker)
    nodes = []
    try:
        for i in (1, 2, 3):
            n = NodeRunner(tmp_path / ("simb-%d" % i), mpy_tree)
            n.write_config(node_config("simb-%d" % i, broker, interval_s=0.5))
            nodes.append(n.start())
        collector.wait(lambda: all(len(collector.seqs("simb-%d" % i)) >= 30 for i in (1, 2, 3)), 120, "30 readings each")
    finally:
        for n in nodes:
            n.stop()
    try:
        # Each node's offline status comes after everything it published on that connection:
        # what the collector has then is all that reached the broker (and the bridge).
        collector.wait(lambda: all(collector.status.get("simb-%d" % i, [{}])[-1].get("state") == "offline"
                                   for i in (1, 2, 3)), 60, "the nodes offline")  # fmt: skip
        for i in (1, 2, 3):
            node = "simb-%d" % i
            with collector.lock:
                published = {p["seq"]: p for p in collector.data[node]}
            last = max(published)
            assert sorted(published) == list(range(1, last + 1)), "the node itself lost a reading"
            wait_all(sta.url, node, last)
            obs = exactly_once(sta.url, node, last)
            for sensor, q, seq, result, when, quality in obs:
                p = published[seq]
                assert sensor == "air" and result == pytest.approx(p["sensors"]["air"][q], abs=1e-9)
                if p.get("ts") is not None and p.get("synced") is not False:
                    assert unix(when) == pytest.approx(p["ts"], abs=0.001)
                    assert quality is None
                else:
                    assert quality and quality["clock"] == "not synced"
        things = {t["name"]: t for t in get_all(sta.url, "Things", {"$expand": "Locations,Datastreams($select=name,"
                                                                    "unitOfMeasurement)"})}  # fmt: skip
        assert things["simb-1"]["Locations"][0]["location"]["coordinates"] == [8.0243, 50.8748]
        assert things["simb-1"]["properties"]["site"] == "Koblenzer Strasse 12"
        assert things["simb-2"]["Locations"] == [] and things["simb-3"]["Locations"] == []
        for i in (1, 2, 3):
            units = {d["name"]: d["unitOfMeasurement"] for d in things["simb-%d" % i]["Datastreams"]}
            assert set(units) == {"simb-%d air %s" % (i, q) for q in ("temperature", "humidity", "pressure")}
            assert units["simb-%d air pressure" % i]["symbol"] == "hPa"
            assert units["simb-%d air temperature" % i]["definition"].endswith("#Cel")
        sensors = get_all(sta.url, "Sensors", {"$expand": "Datastreams($select=name)"})
        by_ds = {d["name"]: s["name"] for s in sensors for d in s["Datastreams"]}
        assert by_ds["simb-1 air temperature"] == "BME280" and by_ds["simb-3 air temperature"] == "unknown chip"
        assert bridge.alive()
    finally:
        bridge.stop()
        collector.close()


def test_bridge_sigkilled_and_restarted_goes_on_where_it_stopped(broker, sta, pub, tmp_path):
    bridge = BridgeProc(broker, tmp_path / "bridge", ["sensorthings=" + sta.url], "--name", "kill").start()
    nodes = ["kill-1", "kill-2", "kill-3"]
    feeder = Feeder(pub, nodes, rate=60)
    feeder.start()
    try:
        for _ in range(3):
            wait_for(lambda: "forwarded" in bridge.output().rsplit("connected to", 1)[-1], 60, "the bridge at work")
            time.sleep(1.5)
            bridge.kill()  # SIGKILL: mid-batch, between a POST and its ack, or between ack and state
            bridge.start()
    finally:
        last = feeder.stop()
    try:
        for n in nodes:
            wait_all(sta.url, n, last)
            exactly_once(sta.url, n, last)
        things = get_all(sta.url, "Things", {"$filter": "startswith(name, 'kill-')", "$expand": "Datastreams($select=id)"})
        assert sorted(t["name"] for t in things) == nodes, "entities found again after each restart"
        assert all(len(t["Datastreams"]) == 3 for t in things)
    finally:
        bridge.stop()


@pytest.mark.parametrize("batch", ["on", "off"])
def test_a_reading_the_server_refuses_goes_to_the_dead_letters_and_the_rest_flows(broker, sta, pub, tmp_path, batch):
    node = "dead-" + batch
    bridge = BridgeProc(broker, tmp_path / "bridge", ["sensorthings=" + sta.url], "--name", node, "--batch",
                        batch).start()  # fmt: skip
    try:
        for seq in range(1, 13):
            if seq == 6:  # valid JSON, a number as the contract allows, beyond what a double holds
                v = values(node, seq)
                body = ('{"seq": 6, "ts": %d, "synced": true, "sensors": {"air": {"temperature": 1%s, '
                        '"humidity": %r, "pressure": %r}}}') % (T0 + 6, "0" * 400, v["humidity"], v["pressure"])
                pub.send("streetnode/%s/data" % node, body)
            else:
                pub.reading(node, seq)
        wait_all(sta.url, node, 12, q="pressure")
        wait_for(lambda: bridge.dead_letters(), 30, "the dead letter")
        obs = observations(sta.url, node)
        temps = seq_counts(obs, "temperature")
        assert sorted(temps) == [s for s in range(1, 13) if s != 6] and set(temps.values()) == {1}
        assert sorted(seq_counts(obs, "humidity")) == list(range(1, 13))  # the rest of seq 6 is stored
        (dead,) = bridge.dead_letters()
        assert dead["target"] == "sensorthings" and dead["seq"] == 6 and "422" in dead["reason"]
        assert json.loads(dead["payload"])["seq"] == 6
        assert "refused %s seq 6 for good" % node in bridge.output()
        pub.reading(node, 13)  # and the stream goes on
        wait_all(sta.url, node, 13, q="pressure")
    finally:
        bridge.stop()


def test_malformed_messages_are_logged_and_skipped(broker, sta, pub, tmp_path):
    node = "malf-1"
    bridge = BridgeProc(broker, tmp_path / "bridge", ["sensorthings=" + sta.url], "--name", node).start()
    topic = "streetnode/%s/data" % node
    bad = [
        b"not json at all",
        b"\xff\xfe\x00",
        b"[1, 2, 3]",
        b'{"seq": "seven", "ts": null, "sensors": {}}',
        b'{"seq": 3, "ts": null, "sensors": {"air": {"temperature": "warm"}}}',
        b'{"seq": 3, "ts": "yesterday", "sensors": {"air": {"temperature": 1.0}}}',
        b'{"seq": 3, "ts": null, "sensors": {"air": {"temperature": NaN}}}',
        b'{"seq": 3, "ts": null, "sensors": {"air": 5}}',
        ('{"seq": 3, "ts": null, "sensors": {"air": {"temperature": 1.0}}, "pad": "%s"}' % ("x" * 1_000_000)).encode(),
    ]
    try:
        pub.reading(node, 1)
        for body in bad:
            pub.send(topic, body)
        pub.reading(node, 2)
        # a node that gains a sensor gets its Datastream
        pub.send(topic, json.dumps({"seq": 3, "ts": T0 + 3, "synced": True,
                                    "sensors": {"air": values(node, 3), "light": {"illuminance": 321.5}}}))  # fmt: skip
        pub.reading(node, 4, synced=False)
        wait_all(sta.url, node, 4, q="pressure")
        obs = exactly_once(sta.url, node, 4)
        light = [o for o in obs if o[1] == "illuminance"]
        assert [(o[0], o[2], o[3]) for o in light] == [("light", 3, 321.5)]
        (unsynced,) = [o for o in obs if o[1] == "temperature" and o[2] == 4]
        assert unsynced[5]["clock"] == "not synced"
        assert abs(unix(unsynced[4]) - time.time()) < 600  # the bridge's receive time, not T0
        wait_for(lambda: len(bridge.dead_letters()) >= len(bad), 30, "every malformed message in the dead letters")
        dead = bridge.dead_letters()
        assert len(dead) == len(bad) and all(d["target"] is None and d["reason"].startswith("malformed") for d in dead)
        assert any("more than" in d["reason"] and d["payload_bytes"] > 1_000_000 for d in dead)
        assert bridge.output().count("skipped a malformed message") == len(bad)
        assert bridge.alive()
    finally:
        bridge.stop()


def test_redelivered_readings_and_a_lost_state_directory_count_nothing_twice(broker, sta, pub, tmp_path):
    """A node sending seqs again (its PUBACK was lost) is deduplicated by the state file; with
    the state directory gone, by looking the readings up at the server; entities are found
    again by name and properties."""
    node = "redo-1"
    state = tmp_path / "bridge"
    bridge = BridgeProc(broker, state, ["sensorthings=" + sta.url], "--name", node).start()
    try:
        for seq in range(1, 11):
            pub.reading(node, seq)
        wait_all(sta.url, node, 10)
        for seq in range(5, 11):  # the node publishes these again
            pub.reading(node, seq)
        pub.reading(node, 11)
        wait_all(sta.url, node, 11)
        assert bridge.stop() == 0
        (state / "state.json").unlink()  # the state directory is lost
        bridge.start()
        for seq in range(1, 13):
            pub.reading(node, seq)
        pub.reading(node, 13)  # a marker: what the bridge did with 1..12 is at the server before it
        wait_all(sta.url, node, 13)
        exactly_once(sta.url, node, 13)
        things = get_all(sta.url, "Things", {"$filter": "name eq '%s'" % node, "$expand": "Datastreams($select=id)"})
        assert len(things) == 1 and len(things[0]["Datastreams"]) == 3
        fois = get_all(sta.url, "FeaturesOfInterest", {"$filter": "name eq '%s'" % node})
        assert len(fois) == 1
    finally:
        bridge.stop()


def test_server_answers_for_the_report(sta):
    """What this server does and does not do of the standard, as the bridge relies on it
    (kept as a test so the note stays true for the pinned version)."""
    root = requests.get(sta.url + "/", timeout=10).json()
    conf = root["serverSettings"]["conformance"]
    assert "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array" in conf
    assert not any("batch" in c for c in conf)  # $batch is not claimed ...
    r = requests.post(sta.url + "/$batch", data=b"--b--", headers={"Content-Type": "multipart/mixed;boundary=b"})
    assert r.status_code == 405  # ... and not served
    assert requests.get(sta.url + "/Observations", params={"$orderby": "phenomenonTime"}).status_code == 500
    assert requests.get(sta.url + "/Observations", params={"$top": 101}).status_code == 422


def test_server_expand_of_many_to_one_repeats_the_first_entity(sta, pub, broker, tmp_path):
    """Evidence for the report: $expand=Datastream on a page of Observations of two
    Datastreams names one Datastream for all (the bridge and these tests use navigation)."""
    node = "expand-1"
    bridge = BridgeProc(broker, tmp_path / "bridge", ["sensorthings=" + sta.url], "--name", node).start()
    try:
        pub.reading(node, 1)
        wait_all(sta.url, node, 1, q="pressure")
    finally:
        bridge.stop()
    page = requests.get(sta.url + "/Observations", params={"$filter": "parameters/node eq '%s'" % node,
                                                           "$expand": "Datastream($select=name)"}).json()["value"]  # fmt: skip
    assert len(page) == 3
    assert len({o["Datastream"]["name"] for o in page}) == 1  # the standard wants 3 different ones


def test_server_skip_pages_overlap(sta):
    """Evidence for the report: paging 250 Observations with $top=100&$skip gives more rows
    than $count, an id twice (the standard wants each entity exactly once across pages)."""
    s = requests.Session()
    thing = s.post(sta.url + "/Things", json={"name": "paging", "description": "d", "Locations": [{
        "name": "l", "description": "d", "encodingType": "application/geo+json",
        "location": {"type": "Point", "coordinates": [8.0, 50.0]}}]}).headers["Location"]  # fmt: skip
    tid = thing.split("('")[1].rstrip("')")
    sid = s.post(sta.url + "/Sensors", json={"name": "p", "description": "d", "encodingType": "text/html",
                                             "metadata": "x"}).headers["Location"].split("('")[1].rstrip("')")  # fmt: skip
    pid = s.post(sta.url + "/ObservedProperties", json={"name": "p", "description": "d", "definition": "urn:x"}
                 ).headers["Location"].split("('")[1].rstrip("')")  # fmt: skip
    ds = s.post(sta.url + "/Datastreams", json={
        "name": "paging", "description": "d",
        "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
        "unitOfMeasurement": {"name": "n", "symbol": "s", "definition": "d"},
        "Thing": {"@iot.id": tid}, "Sensor": {"@iot.id": sid}, "ObservedProperty": {"@iot.id": pid}}
    ).headers["Location"].split("('")[1].rstrip("')")  # fmt: skip
    r = s.post(sta.url + "/CreateObservations", json=[{"Datastream": {"@iot.id": ds}, "components": [
        "phenomenonTime", "result"], "dataArray": [["2026-12-01T00:%02d:%02dZ" % (i // 60, i % 60), i] for i in range(250)]}])
    assert r.status_code == 201
    ids = []
    for skip in (0, 100, 200, 300):
        ids += [o["@iot.id"] for o in s.get(sta.url + "/Datastreams('%s')/Observations" % ds,
                                            params={"$top": 100, "$skip": skip}).json()["value"]]  # fmt: skip
    assert len(set(ids)) <= 250 < len(ids)


def test_server_stopped_for_a_minute_then_started_loses_nothing_and_counts_nothing_twice(broker, outage):
    """The fixture's run (beside the other tests): every seq of both nodes once at the
    server, read back through its REST API, after a 60 s outage in the middle."""
    assert outage.done.wait(OUTAGE_S + 180), "the outage run did not end"
    if outage.error is not None:
        raise outage.error
    url, last = outage.sta.url, outage.last
    assert last - outage.stopped_at >= 20  # the fleet published on through the outage
    for n in outage.nodes:
        wait_all(url, n, last)
        exactly_once(url, n, last)
    out = outage.bridge.output()
    assert "sensorthings: back after" in out, out[-2000:]
    back = float(out.split("sensorthings: back after ")[1].split()[0])
    assert back >= OUTAGE_S - 15, out[-2000:]  # the bridge saw the server gone for about the minute
    status = bridge_status(broker, "outage")
    assert status["state"] == "online" and status["targets"]["sensorthings"]["retried"] >= 1
    # The outage's bridge shares the module's broker, so it also sees the other tests'
    # messages: the malformed ones (no target) and the readings the dead-letter test makes
    # the server refuse. Those are dead-lettered, as they must be; none of the outage's own
    # nodes' readings is (the outage loses nothing, and refuses nothing for good).
    dead = outage.bridge.dead_letters()
    ours = [d for d in dead if any("/%s/" % n in d["topic"] for n in outage.nodes)]
    assert ours == [], ours
    refused = [d for d in dead if d["target"] == "sensorthings"]
    assert status["targets"]["sensorthings"]["dead_lettered"] == len(refused), (status, refused)
