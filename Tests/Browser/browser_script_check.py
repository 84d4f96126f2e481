"""Loads Cairn's /cairn.js into a page in Debian's headless Chromium (through chromedriver), the
way a customer's site would, and reports as one JSON object on stdout what the page saw.

The page is served by this script from 127.0.0.1 (another origin than ingest, as on a real
site). It holds User.com's pre-load stub with one call made before the script loads, then:
  - userengage('event.purchase', {...}) and other User.com calls;
  - a Userlike callback sequence through window.userlikeTrackingEvent (whose earlier page-defined
    function must still be called);
  - hostile calls (no name, a cyclic object, a huge attribute), none of which may throw;
  - in a second tab, 150 calls of 1 KB and one more right before the tab is closed: the pagehide
    beacon carries what fits, and a third tab of the site sends the rest from localStorage.

Usage: browser_script_check.py INGEST_URL WRITE_KEY USER_ID
The Swift test (BrowserScriptTests) asserts on what ingest stored; this script only drives.
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>shop</title>
<link rel="icon" href="data:,">
<script>
  window.pageErrors = [];
  window.addEventListener("error", function (event) { window.pageErrors.push(String(event.message)); });
  window.userlikeCalls = [];
  // The closing tab's batch would wait a minute: only the pagehide beacon can deliver it.
  window.cairnSettings = {flushInterval: %(flush)d};
  window.userlikeTrackingEvent = function (name) { window.userlikeCalls.push(name); };
  window.userengage = window.userengage || function () { (window.userengage.q = window.userengage.q || []).push([Date.now(), arguments]); };
  userengage("event.page_opened", {"page": "%(tag)s"});
</script>
<script src="%(ingest)s/cairn.js" data-write-key="%(key)s" data-user-id="%(user)s"></script>
</head><body><p>%(tag)s</p></body></html>
"""


def serve(ingest, key, user):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            tag = self.path.strip("/").split("?")[0] or "main"
            flush = 60000 if tag == "closing" else 1000
            body = (PAGE % {"ingest": ingest, "key": key, "user": user, "tag": tag, "flush": flush}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    ingest, key, user = sys.argv[1:4]
    server = serve(ingest, key, user)
    site = f"http://127.0.0.1:{server.server_address[1]}"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    report = {}
    try:
        driver.set_page_load_timeout(30)
        driver.get(site + "/main")
        deadline = time.time() + 10
        while not driver.execute_script("return !!(window.cairn && window.cairn.version)") and time.time() < deadline:
            time.sleep(0.05)
        report["loaded"] = driver.execute_script("return !!(window.cairn && window.cairn.version)")
        # Each call must return normally: execute_script raises if the page throws.
        thrown = []
        calls = [
            "userengage('event.purchase', {'sku': '7', 'size': 39, 'color': 'teal', 'price': '39.5', 'express': 'true'})",
            "userengage('event.app_created', {'sku': 7, 'price': 39})",
            "userengage('event.no_attributes')",
            # What is sent is the call as it was: later changes, even a cycle, do not reach it.
            "var a = {'step': 1}; userengage('event.step', a); a.step = 2; userengage('event.step', a);",
            "var cart = {'items': [{'sku': 7}]}; userengage('event.cart_viewed', {'cart': cart}); cart.items[0].cart = cart;",
            "userlikeTrackingEvent('button_displayed', {'client_uuid': 'visitor-1', 'widget_id': 42, 'widget_lang': 'en'}, {})",
            "userlikeTrackingEvent('chat_requested', {'client_uuid': 'visitor-1', 'widget_id': 42}, {'session_id': 's-1'})",
            "userlikeTrackingEvent('chat_started', {'client_uuid': 'visitor-1', 'widget_id': 42}, "
            "{'session_id': 's-1', 'chat_id': 'c-9', 'operator_id': 7, 'operator_name': 'Olga'})",
            "userlikeTrackingEvent('rating_submit', {'client_uuid': 'visitor-1', 'widget_id': 42}, {'session_id': 's-1', 'chat_id': 'c-9'})",
            # Hostile: none of these may throw into the page.
            "userengage()",
            "userengage(42, null)",
            "var o = {}; o.self = o; userengage('event.cyclic', o)",
            "userengage('event.huge', {'blob': 'x'.repeat(100000)})",
            "userlikeTrackingEvent()",
        ]
        for call in calls:
            try:
                driver.execute_script(call)
            except Exception as error:  # the assertion is that nothing lands here
                thrown.append(f"{call}: {error}")
        driver.execute_script("cairn.flush()")
        report["thrown"] = thrown
        report["page_userlike_calls"] = driver.execute_script("return window.userlikeCalls")

        # A second tab: one call, then the tab closes long before its batch timer would fire.
        driver.switch_to.new_window("tab")
        driver.get(site + "/closing")
        deadline = time.time() + 10
        while not driver.execute_script("return !!(window.cairn && window.cairn.version)") and time.time() < deadline:
            time.sleep(0.05)
        # 150 events of 1 KB: more than one beacon can carry (64 KiB); the rest waits in localStorage.
        driver.execute_script("for (var i = 0; i < 150; i++) userengage('event.bulk', {'n': i, 'pad': 'x'.repeat(1000)});")
        driver.execute_script("userengage('event.last_before_close', {'price': 12, 'sku': 'last'})")
        report["closing_errors"] = driver.execute_script("return window.pageErrors")
        driver.close()
        driver.switch_to.window(driver.window_handles[0])
        time.sleep(2)
        # The next page of the site sends what the closed one left.
        driver.switch_to.new_window("tab")
        driver.get(site + "/reopened")
        time.sleep(3)
        report["reopened_errors"] = driver.execute_script("return window.pageErrors")
        driver.close()
        driver.switch_to.window(driver.window_handles[0])
        time.sleep(3)  # the main tab's retries, if any, have their time
        report["page_errors"] = driver.execute_script("return window.pageErrors")
        log = driver.get_log("browser")
        report["console"] = [entry["message"] for entry in log if entry["level"] in ("SEVERE", "ERROR")]
        report["warnings"] = [entry["message"] for entry in log if entry["level"] == "WARNING"]
    finally:
        driver.quit()
        server.shutdown()
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
