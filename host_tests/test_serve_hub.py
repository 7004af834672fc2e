"""The crew page's model (streetnode.field.serve.hub) fed by hand: the plots' last hour, the
alerts of monitor's evaluation, a command's result matched to what the page sent."""

import json

from streetnode.field.serve import hub as hubmod


class FakeClient:
    def __init__(self):
        self.published = []

    def publish(self, topic, payload, qos=1):
        self.published.append((topic, json.loads(payload), qos))


def _hub():
    h = hubmod.Hub(None, "streetnode", {"stuck_n": 3, "stuck_s": 0})
    h.client = FakeClient()
    return h


def test_a_series_keeps_the_last_hour_and_thins_itself_to_stay_small():
    s = hubmod.Series()
    for i in range(5000):
        s.add(1000.0 + i * 0.5, float(i))
    assert len(s.points) <= hubmod.POINTS
    assert s.points[-1] == (1000.0 + 4999 * 0.5, 4999.0)  # the newest is always there
    ts = [t for t, _ in s.points]
    assert ts == sorted(ts)
    s.add(1000.0 + 4999 * 0.5 + 3600, 1.0)  # an hour later: the old hour is gone
    assert [v for _, v in s.points] == [4999.0, 1.0]


def test_the_hub_raises_monitors_alerts_and_keeps_plot_points():
    h = _hub()
    t = 1000.0
    h.feed("streetnode/lamp-1/status", b'{"state": "online", "fw": "0.1.0", "boot_count": 1}', t)
    for seq in range(1, 6):
        data = {"seq": seq, "ts": t + seq, "sensors": {"air": {"temperature": 20.0, "humidity": 50.0}}}
        h.feed("streetnode/lamp-1/data", json.dumps(data).encode(), t + seq)
    h.tick(t + 6)
    n = h.fleet.nodes["lamp-1"]
    assert ("stuck", "air") in n.alerts
    assert [v for _, v in h.series["lamp-1"]["air temperature"].points] == [20.0] * 5
    h.feed("streetnode/lamp-1/data", b"not json", t + 7)  # counted as malformed, nothing breaks
    assert h.fleet.malformed == 1


def test_a_command_result_shows_only_for_the_command_sent_and_without_secrets():
    h = _hub()
    h.feed("streetnode/lamp-1/status", b'{"state": "online"}', 1000.0)
    cid = h.send("lamp-1", "identify", {"seconds": 10})
    topic, cmd, qos = h.client.published[-1]
    assert topic == "streetnode/lamp-1/cmd" and qos == 1
    assert cmd == {"id": cid, "cmd": "identify", "args": {"seconds": 10}}
    h.feed("streetnode/lamp-1/cmd/result", b'{"id": "someone-else", "ok": false}', 1001.0)
    assert h.sent["lamp-1"]["result"] is None
    h.feed("streetnode/lamp-1/cmd/result", json.dumps({"id": cid, "ok": True, "wifi_password": "pw"}).encode(), 1002.0)
    assert h.sent["lamp-1"]["result"] == {"id": cid, "ok": True, "wifi_password": "•••"}
