"""`streetnode serve` in a real browser: Debian's headless Chromium driven by Selenium through
chromedriver, at a phone's 390x844 viewport, against real nodes (the firmware on the real
MicroPython, simulated sensors, one of them frozen) on a real mosquitto, the page started
as its users start it (the `streetnode serve` command). Screenshots go to a temporary
directory; `make screenshots` writes those of docs/field.md (docs/img/) with $STREETNODE_SHOTS."""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from host_tests.fieldfleet import Fleet, wait_until
from streetnode.common import broker as _broker

REPO = Path(__file__).resolve().parent.parent
SHOTS_ENV = "STREETNODE_SHOTS"  # where the screenshots go (relative to the repository); unset: the test's tmp
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PASSWORD = "ladder-and-lamp-42"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")

pytestmark = pytest.mark.skipif(  # CI installs them (.ci/run): there a missing browser fails
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)) and not os.environ.get("CI"),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; CI installs them)",
)


def _serve(broker, port, tmp, *extra):
    cmd = [sys.executable, "-m", "streetnode.cli", "serve", "--broker", "%s:%d" % (broker.host, broker.port),
           "--listen", "127.0.0.1:%d" % port, *extra]  # fmt: skip
    log = open(tmp / ("serve-%d.log" % port), "w+")
    proc = subprocess.Popen(cmd, cwd=str(REPO), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port

    def up():
        if proc.poll() is not None:
            log.seek(0)
            raise AssertionError("streetnode serve exited %s: %s" % (proc.returncode, log.read()))
        try:
            urllib.request.urlopen(url + "/static/app.css", timeout=2).read()
            return True
        except OSError:
            return False

    wait_until(up, 30, "streetnode serve to answer")
    return proc, url


@pytest.fixture(scope="module")
def world(tmp_path_factory, mpy_tree):
    if not _broker.find_mosquitto():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); CI installs it")
    tmp = tmp_path_factory.mktemp("serve")
    (tmp / "register.csv").write_text("id,site,lat,lon,board,sensors,firmware,date,mqtt_password\n"
                                      "good,Marktplatz 3,50.87,8.02,unix-sim,air:bme280@i2c0,0.1,2026-12-01,s3cr3t-pw\n"
                                      "frozen,Bahnhofstr. 12,50.88,8.03,unix-sim,air:bme280@i2c0,0.1,2026-12-01,0ther-pw\n")  # fmt: skip
    pwfile = tmp / "crew.pw"
    r = subprocess.run([sys.executable, "-m", "streetnode.cli", "serve", "--set-crew-password",
                        "--crew-password-file", str(pwfile)], input=PASSWORD + "\n", text=True,
                       capture_output=True, cwd=str(REPO))  # fmt: skip
    assert r.returncode == 0, r.stderr
    with _broker.Broker("mosquitto") as b:
        fleet = Fleet(tmp, mpy_tree, b)
        fleet.add("good", interval_s=0.5)
        fleet.add("frozen", interval_s=0.5, faults=[{"sensor": "air", "kind": "frozen", "at_s": 0}])
        fleet.start()
        port = _broker.free_port()
        proc, url = _serve(b, port, tmp, "--crew-password-file", str(pwfile), "--register", str(tmp / "register.csv"),
                           "--check-timeout", "25", "--check-readings", "5", "--check-stuck-s", "1",
                           "--stuck-s", "5")  # fmt: skip
        try:
            shots = REPO / os.environ[SHOTS_ENV] if os.environ.get(SHOTS_ENV) else tmp / "shots"
            yield {"url": url, "broker": b, "tmp": tmp, "pwfile": pwfile, "shots": shots}
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            fleet.stop()


@pytest.fixture(autouse=True)
def _fresh_logs(request):
    """Each test reads only its own browser logs: a test that failed before its `_clean`
    leaves its expected refusals behind, and they must not fail the next test."""
    if "browser" in request.fixturenames:
        d = request.getfixturevalue("browser")
        d.get_log("browser")
        d.get_log("performance")


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-default-apps", "--window-size=390,844"):  # fmt: skip
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 1,
                                                             "mobile": True})  # fmt: skip
    d.set_page_load_timeout(30)
    try:
        yield d
    finally:
        d.quit()


def _clean(d, refused=()):
    """No console error, and no request to anything but this machine's loopback. `refused`:
    the (path, HTTP status) the test provoked (a refusal is an error in Chrome's log)."""
    errors = [e for e in d.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    expected = ["%s - Failed to load resource: the server responded with a status of %d" % r for r in refused]
    for e in errors:
        assert e["source"] == "network" and any(x in e["message"] for x in expected), errors
    for x in expected:
        assert any(x in e["message"] for e in errors), (x, errors)
    urls = []
    for e in d.get_log("performance"):
        m = json.loads(e["message"])["message"]
        if m["method"] == "Network.requestWillBeSent":
            urls.append(m["params"]["request"]["url"])
    assert urls, "the performance log saw no request at all"
    for u in urls:
        p = urllib.parse.urlsplit(u)
        assert p.scheme in ("data", "about", "blob") or p.hostname in ("127.0.0.1", "localhost", "::1"), u
    return urls


def _shot(d, world, name, full=False):
    world["shots"].mkdir(parents=True, exist_ok=True)
    path = world["shots"] / name
    if full:
        import base64

        h = d.execute_script("return document.documentElement.scrollHeight")
        img = d.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": {
            "x": 0, "y": 0, "width": 390, "height": h, "scale": 1}})  # fmt: skip
        path.write_bytes(base64.b64decode(img["data"]))
    else:
        d.save_screenshot(str(path))
    assert path.stat().st_size > 1000


def _text(d, css):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return d.find_element("css selector", css).text
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def _wait_text(d, css, good, timeout, what):
    """The text of `css` once good(text) (a live update may replace the element meanwhile)."""
    box = []
    wait_until(lambda: good(_text(d, css)) and not box.append(_text(d, css)) and good(box[-1]), timeout, what)
    return box[-1]


def _sign_in(d, url, password, next_path="/"):
    """Sign in through the form, and return once the browser has left the form's page (the
    answer, a redirect or a refusal, has loaded): the login URL names `next_path` too, so the
    URL alone does not say the answer came."""
    from selenium.common.exceptions import StaleElementReferenceException

    d.get(url + "/login?next=" + urllib.parse.quote(next_path))
    field = d.find_element("id", "password")
    field.send_keys(password)
    d.find_element("id", "sign-in").click()

    def answered():
        try:
            field.is_enabled()
            return False
        except StaleElementReferenceException:
            return d.execute_script("return document.readyState") == "complete"

    wait_until(answered, 30, "the answer to the sign-in form")


def test_fleet_page_lists_the_nodes_with_live_values_on_a_phone(world, browser):
    d = browser
    d.get(world["url"] + "/")
    assert d.execute_script("return window.innerWidth") == 390
    wait_until(lambda: "°C" in _text(d, "#n-frozen .vals"), 60, "the frozen node's readings")
    first = _wait_text(d, "#n-good .vals", lambda t: "°C" in t, 60, "the good node's readings")
    assert "°C" in first and "hPa" in first and "lx" in first and "%RH" in first, first
    wait_until(lambda: _text(d, "#n-good .vals") not in ("", first), 30, "the good node's values to change")
    assert "Marktplatz 3" in _text(d, "#n-good")
    assert "online" in _text(d, "#n-good .state")
    # the frozen sensor raises monitor's stuck alert, and the problem node comes first
    wait_until(lambda: "stuck air" in _text(d, "#n-frozen .alerts"), 60, "the stuck alert on the frozen node")
    wait_until(lambda: d.find_element("css selector", "#fleet .card").get_attribute("data-id") == "frozen", 10,
               "the problem node first")  # fmt: skip
    assert "problem" in d.find_element("id", "n-frozen").get_attribute("class")
    assert not _text(d, "#n-good .alerts")
    # nothing wider than the phone
    assert d.execute_script("return document.documentElement.scrollWidth") <= 390
    # search by site, as the crew types it
    d.find_element("id", "q").send_keys("bahnhof")
    wait_until(lambda: not d.find_element("id", "n-good").is_displayed(), 5, "the search to hide the other node")
    assert d.find_element("id", "n-frozen").is_displayed()
    d.find_element("id", "q").clear()
    d.execute_script("document.getElementById('q').dispatchEvent(new Event('input'))")
    wait_until(lambda: d.find_element("id", "n-good").is_displayed(), 5, "the search to show every node again")
    time.sleep(1)  # one more live update before the picture
    _shot(d, world, "serve-fleet.png")
    html = d.page_source
    assert "s3cr3t-pw" not in html and "0ther-pw" not in html  # the register's secret column never shows
    _clean(d)


def test_identify_is_refused_without_the_crew_password_and_shows_the_result_with_it(world, browser):
    d, url = browser, world["url"]
    d.delete_all_cookies()
    # plain HTTP first: no session, no command
    req = urllib.request.Request(url + "/node/good/identify", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 401
    # a cross-site POST is refused whatever it carries
    req = urllib.request.Request(url + "/node/good/identify", data=b"", method="POST",
                                 headers={"Origin": "http://evil.example"})  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 403

    d.get(url + "/node/good")
    wait_until(lambda: "°C" in _text(d, "#readings"), 30, "the node page's readings")
    d.find_element("id", "identify").click()
    wait_until(lambda: "Refused" in _text(d, "#notice"), 15, "the refusal")
    assert "sign in" in _text(d, "#notice").lower()
    assert _text(d, "#cmd") == ""  # nothing was sent
    _shot(d, world, "serve-identify-refused.png")

    _sign_in(d, url, "not-the-password", "/node/good")
    wait_until(lambda: "Wrong password" in _text(d, "#login-error"), 15, "the wrong password said")
    _shot(d, world, "serve-login.png")
    time.sleep(1.1)  # the slow-down after one wrong password
    _sign_in(d, url, PASSWORD, "/node/good")
    assert urllib.parse.urlsplit(d.current_url).path == "/node/good", d.current_url
    wait_until(lambda: "sign out" in _text(d, ".bar").lower(), 15, "the signed-in bar")
    d.find_element("id", "identify").click()
    wait_until(lambda: "cmd/result: ok" in _text(d, "#cmd-result"), 30, "the node's cmd/result")
    assert "identify" in _text(d, "#cmd-sent")
    assert '"ok": true' in _text(d, "#cmd pre")
    _clean(d, refused=[("/node/good/identify", 401), ("/login", 401)])


def test_the_check_passes_for_a_healthy_node_and_fails_with_the_reason_for_a_frozen_sensor(world, browser):
    d, url = browser, world["url"]
    if not any(c["name"] == "streetnode_crew" for c in d.get_cookies()):
        _sign_in(d, url, PASSWORD, "/node/good")
    d.get(url + "/node/good")
    wait_until(lambda: d.find_elements("css selector", "#plots svg polyline[points*=',']"), 30, "a plot")
    d.find_element("id", "run-check").click()
    wait_until(lambda: "left" in _text(d, "#check-progress") or _text(d, "#check-verdict"), 15, "the countdown")
    wait_until(lambda: _text(d, "#check-verdict"), 60, "the check's verdict")
    verdict = _text(d, "#check-verdict")
    assert verdict.startswith("PASS"), _text(d, "#check")
    items = _text(d, "#check .items")
    for name in ("online", "firmware", "clock", "sensor air", "sensor light", "outbox", "signal", "reboots", "config"):
        assert name in items, items
    assert "FAIL" not in items
    _shot(d, world, "serve-node.png", full=True)
    _clean(d)

    d.get(url + "/node/frozen")
    d.find_element("id", "run-check").click()
    wait_until(lambda: _text(d, "#check-verdict"), 60, "the frozen node's verdict")
    assert _text(d, "#check-verdict").startswith("FAIL"), _text(d, "#check")
    air = [li.text for li in d.find_elements("css selector", "#check .items li") if "sensor air" in li.text]
    assert air and air[0].startswith("FAIL") and "stuck" in air[0], air
    light = [li.text for li in d.find_elements("css selector", "#check .items li") if "sensor light" in li.text]
    assert light and light[0].startswith("PASS"), light
    _shot(d, world, "serve-check-fail.png", full=True)
    _clean(d)

    # the report for the fleet register, as the download link gives it
    cookie = "; ".join("%s=%s" % (c["name"], c["value"]) for c in d.get_cookies())
    req = urllib.request.Request(url + "/node/frozen/check/report.txt", headers={"Cookie": cookie})
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode()
        assert "attachment" in r.headers["Content-Disposition"]
    assert "RESULT: FAIL" in text and "stuck" in text, text
    with urllib.request.urlopen(url + "/node/frozen/check/report.json", timeout=10) as r:
        result = json.loads(r.read())
    assert result["result"] == "fail" and result["node"] == "frozen"


def test_a_listener_off_loopback_needs_the_password_even_to_read(world, tmp_path):
    port = _broker.free_port()
    r = subprocess.run([sys.executable, "-m", "streetnode.cli", "serve", "--broker", "127.0.0.1:%d" % world["broker"].port,
                        "--listen", "0.0.0.0:%d" % port], capture_output=True, text=True, cwd=str(REPO), timeout=60)  # fmt: skip
    assert r.returncode == 2 and "--crew-password-file" in r.stderr, r.stderr
    cmd = [sys.executable, "-m", "streetnode.cli", "serve", "--broker", "127.0.0.1:%d" % world["broker"].port,
           "--listen", "0.0.0.0:%d" % port, "--crew-password-file", str(world["pwfile"])]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = "http://127.0.0.1:%d" % port

        def answer(path):
            try:
                return urllib.request.urlopen(url + path, timeout=2)
            except urllib.error.HTTPError as e:
                return e
            except OSError:
                return None

        wait_until(lambda: answer("/static/app.css") is not None, 30, "the server")
        r = answer("/")
        assert r.url.endswith("/login?next=%2F"), r.url  # sent to sign in, not shown the fleet
        assert answer("/events/fleet").code == 401
        assert answer("/node/good").url.endswith("/login?next=%2Fnode%2Fgood")
    finally:
        proc.terminate()
        proc.wait(10)
