"""The OGC SensorThings API v1.1 (OGC 18-088) target, over plain HTTP with `requests`.

Per node a Thing (name = node id; properties site, board, firmware) with its Location from
the register (none without one), a FeatureOfInterest of its own (the node's point, or a
GeoJSON Feature without geometry when the register has no position), a Sensor per chip model
(datasheet as metadata), an ObservedProperty per quantity (stable definition URIs), a
Datastream per node, sensor and quantity (unitOfMeasurement with its UCUM code; properties
node, sensor, quantity), and an Observation per value: phenomenonTime from the reading's ts
(the bridge's receive time and a resultQuality saying so when the node's clock was not
synced), parameters {"node", "seq"}.

Entities are looked up by name and properties on first use after every start (no ids are
cached on disk): a restarted bridge, or a second one, finds them again; a node that gains a
sensor gets its Datastream when its first value arrives.

Observations go out as the DataArray extension's CreateObservations (one request per batch)
when the server declares the data-array conformance class, else one POST each; `batch=False`
forces the latter. A reading that may be at the server already (the delivery state says
so: sent without an answer, or of a node it does not know) is looked up first ($filter on
parameters/node and parameters/seq) and not created twice.
"""

import datetime
import re
import time

from streetnode.integrator.quantities import chip, quantity
from streetnode.integrator.target import Target, TargetUnavailable

OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
DATA_ARRAY = "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array"
PAGE = 100  # django-ogc-sensorthings caps $top at 100 (more is a 422); FROST's default is 100 too
_ID = re.compile(r"\((?:'([^']*)'|([0-9]+))\)\s*$")
NOT_SYNCED = {"clock": "not synced", "phenomenonTime": "the bridge's receive time, not the node's"}


class Refused(Exception):
    """The server refused one request for good (a 4xx retrying cannot cure)."""


def iso(ts):
    t = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def quote(text):
    return "'%s'" % str(text).replace("'", "''")


def ref(entity_id):
    """An id as it goes into a URL: Things('uuid') or Things(42)."""
    return str(entity_id) if isinstance(entity_id, int) else quote(entity_id)


class SensorThings(Target):
    name = "sensorthings"

    def __init__(self, url, register=None, batch=None, timeout=(5.0, 30.0), session=None, log=print):
        import requests

        self.url = url.rstrip("/")
        self.register = register or {}
        self.timeout = timeout
        self.http = session or requests.Session()
        self.http.headers.update({"Content-Type": "application/json", "Accept": "application/json"})
        self._requests = requests
        self.batch = batch  # None: as the server's conformance says
        self.log = log
        self.fw = {}  # node -> firmware from its status
        self.requests_sent = 0
        self._forget()

    def _forget(self):
        self._nodes = {}  # node -> {"thing", "foi", "ds": {(sensor, quantity): id}}
        self._sensors = {}
        self._props = {}

    # -- HTTP ---------------------------------------------------------------------------

    def _call(self, method, path, body=None, params=None):
        """(status, json or None, Location); TargetUnavailable for what retrying may cure,
        Refused for a 4xx it cannot."""
        url = path if path.startswith("http") else self.url + "/" + path
        self.requests_sent += 1
        try:
            r = self.http.request(method, url, json=body, params=params, timeout=self.timeout)
        except self._requests.RequestException as e:
            raise TargetUnavailable("%s %s: %s" % (method, path.split("?")[0], type(e).__name__)) from None
        if r.status_code >= 500 or r.status_code in (401, 403, 404, 408, 425, 429):
            # 401/403: our credentials, not the reading; 404: an entity we knew went away
            raise TargetUnavailable("%s %s answered %d %s" % (method, path.split("?")[0], r.status_code,
                                                              r.text[:200].strip()))  # fmt: skip
        if r.status_code >= 400:
            raise Refused("%s %s answered %d: %s" % (method, path.split("?")[0], r.status_code, r.text[:300].strip()))
        try:
            data = r.json() if r.content else None
        except ValueError:
            data = None
        return r.status_code, data, r.headers.get("Location")

    def _id_of(self, location, data):
        if isinstance(data, dict) and "@iot.id" in data:
            return data["@iot.id"]
        m = _ID.search(location or "")
        if not m:
            raise TargetUnavailable("the server created an entity but gave no id (Location %r)" % location)
        return m.group(1) if m.group(1) is not None else int(m.group(2))

    def _create(self, collection, body):
        _, data, location = self._call("POST", collection, body)
        return self._id_of(location, data)

    def _get_all(self, path, params):
        out = []
        params = dict(params, **{"$top": PAGE})
        skip = 0
        while True:
            params["$skip"] = skip
            _, data, _ = self._call("GET", path, params=params)
            page = (data or {}).get("value") or []
            out += page
            if len(page) < PAGE:
                return out
            skip += PAGE

    def _find_one(self, collection, filt):
        _, data, _ = self._call("GET", collection, params={"$filter": filt, "$top": 1})
        value = (data or {}).get("value") or []
        return value[0]["@iot.id"] if value else None

    def server_batches(self):
        """Does the server declare the DataArray extension (CreateObservations)?"""
        _, data, _ = self._call("GET", "")
        conformance = ((data or {}).get("serverSettings") or {}).get("conformance") or []
        return DATA_ARRAY in conformance

    # -- entities -----------------------------------------------------------------------

    def node_status(self, node, status):
        fw = status.get("fw")
        if isinstance(fw, str) and fw:
            self.fw[node] = fw

    def _thing(self, node):
        entry = self._nodes.get(node)
        if entry is not None:
            return entry
        info = self.register.get(node)
        things = self._get_all("Things", {"$filter": "name eq %s" % quote(node),
                                          "$expand": "Datastreams($select=id,properties)"})  # fmt: skip
        props = {"node": node, "site": info.site if info else "", "board": info.board if info else "",
                 "firmware": self.fw.get(node) or (info.firmware if info else "")}  # fmt: skip
        if things:
            thing = things[0]
            tid = thing["@iot.id"]
            ds = {}
            for d in thing.get("Datastreams") or []:
                p = d.get("properties") or {}
                if p.get("node") == node and p.get("sensor") and p.get("quantity"):
                    ds[(p["sensor"], p["quantity"])] = d["@iot.id"]
            old = thing.get("properties") or {}
            if any(props[k] and old.get(k) != props[k] for k in props):
                self._call("PATCH", "Things(%s)" % ref(tid), {"properties": dict(old, **{k: v for k, v in props.items() if v})})
        else:
            body = {"name": node, "description": "streetnode sensor node %s%s" % (node, " at " + info.site if info and info.site else ""),
                    "properties": props}  # fmt: skip
            if info and info.located:
                body["Locations"] = [{
                    "name": "%s location" % node,
                    "description": info.site or "position of node %s" % node,
                    "encodingType": "application/geo+json",
                    "location": {"type": "Point", "coordinates": [info.lon, info.lat]},
                }]
            tid = self._create("Things", body)
            ds = {}
        foi = self._find_one("FeaturesOfInterest", "name eq %s" % quote(node))
        if foi is None:
            if info and info.located:
                feature = {"type": "Point", "coordinates": [info.lon, info.lat]}
            else:
                feature = {"type": "Feature", "geometry": None, "properties": {"node": node}}
            foi = self._create("FeaturesOfInterest", {
                "name": node, "description": "the air around node %s%s" % (node, "" if info and info.located else
                                                                           " (position not registered)"),
                "encodingType": "application/geo+json", "feature": feature})  # fmt: skip
        entry = self._nodes[node] = {"thing": tid, "foi": foi, "ds": ds}
        return entry

    def _sensor(self, node, sensor):
        info = self.register.get(node)
        driver = info.drivers.get(sensor) if info else None
        name, maker, datasheet = chip(driver)
        sid = self._sensors.get(name)
        if sid is None:
            sid = self._find_one("Sensors", "name eq %s" % quote(name))
            if sid is None:
                sid = self._create("Sensors", {
                    "name": name, "description": "%s %s" % (maker, name) if maker != "unknown" else name,
                    "encodingType": "application/pdf" if datasheet else "text/html",
                    "metadata": datasheet or "no datasheet known: the node did not say which chip it has"})  # fmt: skip
            self._sensors[name] = sid
        return sid

    def _property(self, q):
        facts = quantity(q)
        label, definition = (facts[0], facts[4]) if facts else (q, "urn:streetnode:quantity:%s" % q)
        pid = self._props.get(q)
        if pid is None:
            pid = self._find_one("ObservedProperties", "name eq %s" % quote(label))
            if pid is None:
                pid = self._create("ObservedProperties", {"name": label, "definition": definition,
                                                          "description": "%s (streetnode quantity %s)" % (label, q)})
            self._props[q] = pid
        return pid

    def _datastream(self, node, sensor, q):
        entry = self._thing(node)
        did = entry["ds"].get((sensor, q))
        if did is not None:
            return did
        facts = quantity(q)
        unit = ({"name": facts[2], "symbol": facts[1], "definition": "http://unitsofmeasure.org/ucum.html#" + facts[3]}
                if facts else {"name": "unknown", "symbol": "", "definition": ""})  # fmt: skip
        did = self._create("Datastreams", {
            "name": "%s %s %s" % (node, sensor, q),
            "description": "%s measured by sensor %s of node %s" % (facts[0] if facts else q, sensor, node),
            "observationType": OM_MEASUREMENT,
            "unitOfMeasurement": unit,
            "properties": {"node": node, "sensor": sensor, "quantity": q},
            "Thing": {"@iot.id": entry["thing"]},
            "Sensor": {"@iot.id": self._sensor(node, sensor)},
            "ObservedProperty": {"@iot.id": self._property(q)},
        })  # fmt: skip
        entry["ds"][(sensor, q)] = did
        return did

    # -- observations -------------------------------------------------------------------

    def existing(self, rows):
        """{(datastream id, seq)} already at the server among rows [(reading, datastream id, row)].

        Asked per Datastream (Datastreams(id)/Observations?$filter=parameters/seq ...): this
        server's $expand=Datastream on a page of Observations gives every one of them the
        first one's Datastream, so a lookup across Datastreams cannot tell them apart."""
        found = set()
        wanted = {}
        for r, ds, _ in rows:
            wanted.setdefault(ds, set()).add((r.node, r.seq))
        for ds, keys in wanted.items():
            node = next(iter(keys))[0]
            seqs = sorted(seq for _, seq in keys)
            i = 0
            while i < len(seqs):
                j = i
                # a span of < 64 seqs: one page (< $top 100) per query; this server's $skip
                # pages overlap, so a lookup that needs paging could miss one and send it twice
                while j + 1 < len(seqs) and seqs[j + 1] - seqs[i] < 64:
                    j += 1
                filt = "parameters/node eq %s and parameters/seq ge %d and parameters/seq le %d" % (quote(node), seqs[i], seqs[j])
                for o in self._get_all("Datastreams(%s)/Observations" % ref(ds), {"$filter": filt, "$select": "parameters"}):
                    p = o.get("parameters") or {}
                    if p.get("node") == node and isinstance(p.get("seq"), int):
                        found.add((ds, p["seq"]))
                i = j + 1
        return found

    def _row(self, r, value, foi):
        t = iso(r.ts) if r.clock_ok else iso(r.received)
        return [t, value, {"node": r.node, "seq": r.seq}, foi] + ([] if r.clock_ok else [NOT_SYNCED])

    def deliver(self, readings, uncertain):
        try:
            return self._deliver(readings, uncertain)
        except TargetUnavailable:
            self._forget()  # look everything up again: an entity may have gone away
            raise

    def _deliver(self, readings, uncertain):
        if self.batch is None:
            self.batch = self.server_batches()
        outcome = {}
        rows = []  # (reading, datastream id, row)
        for r in readings:
            try:
                foi = self._thing(r.node)["foi"]
                for sensor, q, v in r.values:
                    rows.append((r, self._datastream(r.node, sensor, q), self._row(r, v, foi)))
            except Refused as e:
                # Our entities, not the reading: a dead letter would drop the whole stream.
                raise TargetUnavailable("creating the entities of node %s: %s" % (r.node, e)) from None
        check = [x for x in rows if x[0].key in uncertain]
        if check:
            have = self.existing(check)
            rows = [x for x in rows if (x[1], x[0].seq) not in have]
            if have:
                self.log("sensorthings: %d of %d values looked up were there already (not sent again)" % (len(have), len(check)))
        if self.batch:
            self._post_array(rows, outcome)
        else:
            self._post_each(rows, outcome)
        for r in readings:
            outcome.setdefault(r.key, None)
        return outcome

    def _post_each(self, rows, outcome):
        for r, ds, row in rows:
            body = {"phenomenonTime": row[0], "result": row[1], "parameters": row[2],
                    "FeatureOfInterest": {"@iot.id": row[3]}, "Datastream": {"@iot.id": ds}}  # fmt: skip
            if len(row) > 4:
                body["resultQuality"] = row[4]
            try:
                self._call("POST", "Observations", body)
            except Refused as e:
                outcome.setdefault(r.key, str(e))

    def _post_array(self, rows, outcome):
        groups = {}
        for r, ds, row in rows:
            groups.setdefault((ds, len(row)), []).append((r, ds, row))
        if not groups:
            return
        keys = list(groups)
        body = []
        for ds, n in keys:
            components = ["phenomenonTime", "result", "parameters", "FeatureOfInterest/id"]
            if n > 4:
                components.append("resultQuality")
            body.append({"Datastream": {"@iot.id": ds}, "components": components,
                         "dataArray": [row for _, _, row in groups[(ds, n)]]})  # fmt: skip
        try:
            _, links, _ = self._call("POST", "CreateObservations", body)
        except Refused:
            links = None  # one bad value refuses the whole request: find it one by one below
        failed = []
        if not isinstance(links, list) or len(links) != len(rows):
            failed = [x for k in keys for x in groups[k]]
        else:
            i = 0
            for k in keys:
                g = groups[k]
                if any(link == "error" for link in links[i : i + len(g)]):
                    failed += g  # a group is one transaction at this server: none of it stored
                i += len(g)
        if failed:
            have = self.existing(failed)  # a server that stored part of a group
            self._post_each([x for x in failed if (x[1], x[0].seq) not in have], outcome)

    def wait_ready(self, timeout=30.0):
        """For tests and the benchmark: the service root answers."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._call("GET", "")
                return
            except TargetUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
