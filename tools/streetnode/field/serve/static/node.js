// Node page: panels re-rendered by the server arrive over SSE; the plots are drawn here
// as SVG polylines of the last hour; identify and the check are POSTs with the session.
(function () {
  "use strict";
  var HOUR = 3600, node = document.getElementById("head").getAttribute("data-node");
  var series = JSON.parse(document.getElementById("series").textContent);  // name -> [[t rel. to now, v]]
  var base = Date.now() / 1000, received = Date.now();
  Object.keys(series).forEach(function (k) {
    series[k] = series[k].map(function (p) { return [base + p[0], p[1]]; });
  });
  var plots = document.getElementById("plots"), notice = document.getElementById("notice");
  function fmt(v, span) { return v.toFixed(span >= 20 ? 0 : span >= 2 ? 1 : 2); }
  function draw() {
    var now = Date.now() / 1000, names = Object.keys(series).sort();
    if (!names.length) { plots.innerHTML = '<p class="muted">No readings yet.</p>'; return; }
    names.forEach(function (k) {
      var pts = series[k] = series[k].filter(function (p) { return p[0] >= now - HOUR; });
      var fig = document.getElementById("plot-" + k);
      if (!fig) {
        fig = document.createElement("figure");
        fig.id = "plot-" + k;
        fig.innerHTML = '<figcaption><span class="name"></span><span class="range"></span></figcaption>' +
          '<svg viewBox="0 0 300 72" preserveAspectRatio="none" role="img"><polyline points=""/></svg>';
        fig.querySelector(".name").textContent = k;
        fig.querySelector("svg").setAttribute("aria-label", k + ", last hour");
        plots.appendChild(fig);
      }
      if (!pts.length) return;
      var lo = Infinity, hi = -Infinity, t0 = pts[0][0], t1 = Math.max(now, t0 + 1);
      pts.forEach(function (p) { lo = Math.min(lo, p[1]); hi = Math.max(hi, p[1]); });
      var data = hi - lo, span = data || Math.max(Math.abs(hi) * 0.01, 0.1), mid = (hi + lo) / 2;
      var y0 = mid - span * 0.6, y1 = mid + span * 0.6;
      fig.querySelector("polyline").setAttribute("points", pts.map(function (p) {
        return ((p[0] - t0) / (t1 - t0) * 300).toFixed(1) + "," + (72 - (p[1] - y0) / (y1 - y0) * 72).toFixed(1);
      }).join(" "));
      var mins = Math.max(1, Math.round((now - t0) / 60));
      fig.querySelector(".range").textContent = (data ? fmt(lo, data) + " … " + fmt(hi, data) : fmt(lo, 0) + " steady") +
        " · " + mins + " min";
    });
  }
  function ago() {
    var el = document.querySelector("#head .ago"), a = el && el.getAttribute("data-age");
    if (a) el.textContent = (parseInt(a, 10) + Math.floor((Date.now() - received) / 1000)) + " s";
  }
  function say(text, link) {
    notice.textContent = text + " ";
    if (link) {
      var a = document.createElement("a");
      a.href = link; a.textContent = "Sign in";
      notice.appendChild(a);
    }
    notice.hidden = false;
  }
  function post(button) {
    button.disabled = true;
    notice.hidden = true;
    fetch(button.getAttribute("data-url"), {method: "POST", credentials: "same-origin"})
      .then(function (r) { return r.json().then(function (d) { return [r, d]; }); })
      .then(function (rd) { if (!rd[0].ok) say(rd[1].error || "Refused.", rd[1].login); })
      .catch(function () { say("No answer from the server: check the phone's connection."); })
      .then(function () { button.disabled = false; });
  }
  ["identify", "run-check"].forEach(function (id) {
    var b = document.getElementById(id);
    b.addEventListener("click", function () { post(b); });
  });
  var es = new EventSource("/events/node/" + encodeURIComponent(node) + "?since=" +
    encodeURIComponent(document.getElementById("head").getAttribute("data-now")));
  es.onmessage = function (ev) {
    var d = JSON.parse(ev.data), now = Date.now() / 1000;
    received = Date.now();
    Object.keys(d.html).forEach(function (part) { document.getElementById(part).innerHTML = d.html[part]; });
    Object.keys(d.points).forEach(function (k) {
      var s = series[k] || (series[k] = []);
      d.points[k].forEach(function (p) { s.push([now + p[0], p[1]]); });
      s.sort(function (a, b) { return a[0] - b[0]; });
    });
    draw();
  };
  draw();
  setInterval(ago, 1000);
})();
