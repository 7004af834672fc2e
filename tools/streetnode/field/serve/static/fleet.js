// Fleet page: changed cards arrive over SSE (/events/fleet) as HTML rendered by the server.
(function () {
  "use strict";
  var list = document.getElementById("fleet"), q = document.getElementById("q");
  var skew = 0, received = Date.now();
  function filter() {
    var text = (q.value || "").trim().toLowerCase();
    Array.prototype.forEach.call(list.querySelectorAll(".card"), function (el) {
      el.hidden = !!text && el.getAttribute("data-search").toLowerCase().indexOf(text) < 0;
    });
  }
  function ago(s) {
    if (s < 90) return s + " s";
    if (s < 5400) return Math.floor(s / 60) + " min";
    return Math.floor(s / 3600) + " h";
  }
  function tickAges() {
    var extra = Math.floor((Date.now() - received) / 1000);
    Array.prototype.forEach.call(document.querySelectorAll(".ago"), function (el) {
      var a = el.getAttribute("data-age");
      if (a !== "") el.textContent = ago(parseInt(a, 10) + extra);
    });
  }
  q.addEventListener("input", filter);
  q.form.addEventListener("submit", function (e) { e.preventDefault(); filter(); });
  var es = new EventSource("/events/fleet");
  es.onmessage = function (ev) {
    var d = JSON.parse(ev.data);
    received = Date.now();
    var empty = document.getElementById("empty");
    if (empty && d.order.length) empty.remove();
    Object.keys(d.html).forEach(function (id) {
      var old = document.getElementById("n-" + id), t = document.createElement("template");
      t.innerHTML = d.html[id].trim();
      if (old) old.replaceWith(t.content.firstChild); else list.appendChild(t.content.firstChild);
    });
    d.order.forEach(function (id) {  // problem nodes first, as the server ordered them
      var el = document.getElementById("n-" + id);
      if (el) list.appendChild(el);
    });
    document.getElementById("total").textContent = d.total;
    document.getElementById("alerting").textContent = d.alerting;
    filter();
  };
  setInterval(tickAges, 1000);
  filter();
})();
