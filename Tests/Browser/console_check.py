"""Drives the console in Debian's headless Chromium (through chromedriver) and reports, as one
JSON object (on stdout and in SCREENSHOT_DIR/report.json), what a person would see: console errors per page, the marks of each
chart against the rows of its table and of the report API, the numbers in those tables against
the API's, how long the live tail took to show a fresh event, and a screenshot of each page.

Usage: console_check.py BASE_URL APP READ_KEY INGEST_URL WRITE_KEY SCREENSHOT_DIR PAGE_PATH...
The Swift test (ConsoleBrowserTests) asserts on the report; this script only observes.
"""
import json
import sys
import time
import urllib.request
import base64

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def cell(value):
    """A value as the console's tables print it (TableText.cell)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return repr(round(value * 100) / 100)
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def main():
    base, app, read_key, ingest, write_key, shots = sys.argv[1:7]
    pages = sys.argv[7:]
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1800"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    report = {"pages": [], "live": None, "login": None}
    try:
        driver.set_page_load_timeout(30)
        driver.get(base + "/login")
        driver.find_element(By.NAME, "key").send_keys(read_key)
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        time.sleep(0.3)
        report["login"] = driver.current_url
        for index, path in enumerate(pages):
            started = time.time()
            driver.get(base + path)
            loaded = time.time() - started
            name = f"{index:02d}-" + path.split("?")[0].strip("/").replace("/", "-")
            driver.save_screenshot(f"{shots}/{name}.png")
            errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
            figures = []
            for figure in driver.find_elements(By.CSS_SELECTOR, "figure.figure"):
                api = figure.get_attribute("data-api")
                marks = len(figure.find_elements(By.CSS_SELECTOR, ".mark"))
                section = figure.find_element(By.XPATH, "./ancestor::section")
                header = [th.get_attribute("textContent") for th in section.find_elements(By.CSS_SELECTOR, "details.numbers thead th")]
                body = [
                    [td.get_attribute("textContent") for td in tr.find_elements(By.CSS_SELECTOR, "td")]
                    for tr in section.find_elements(By.CSS_SELECTOR, "details.numbers tbody tr")
                ]
                request = urllib.request.Request(base + api, headers={"Authorization": "Bearer " + read_key})
                rows = json.load(urllib.request.urlopen(request, timeout=60))["rows"]
                expected = [[cell(row.get(column)) for column in header] for row in rows]
                figures.append({
                    "api": api,
                    "marks": marks,
                    "table_rows": len(body),
                    "api_rows": len(rows),
                    "numbers_match": body == expected,
                    "first_difference": next(([a, b] for a, b in zip(body, expected) if a != b), None),
                })
            report["pages"].append({"path": path, "title": driver.title, "load_s": round(loaded, 3), "errors": errors, "figures": figures})
        # The first page again in dark mode, as a reader whose system prefers it sees it.
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        driver.get(base + pages[0])
        driver.save_screenshot(f"{shots}/dark-{pages[0].split('?')[0].strip('/').replace('/', '-')}.png")
        report["dark_errors"] = [entry["message"] for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "light"}]})
        driver.get(base + f"/apps/{app}/live")
        deadline = time.time() + 10
        while "Live:" not in driver.find_element(By.CSS_SELECTOR, ".live-state").text and time.time() < deadline:
            time.sleep(0.05)
        name = f"live-tail-{int(time.time() * 1000)}"
        body = json.dumps({"userId": "browser-user", "event": name, "messageId": name}).encode()
        auth = "Basic " + base64.b64encode((write_key + ":").encode()).decode()
        post = urllib.request.Request(ingest + "/v1/track", data=body, headers={"Content-Type": "application/json", "Authorization": auth})
        urllib.request.urlopen(post, timeout=10).read()
        acknowledged = time.time()
        shown = None
        while time.time() < acknowledged + 10:
            if name in driver.find_element(By.ID, "tail").text:
                shown = time.time() - acknowledged
                break
            time.sleep(0.05)
        driver.save_screenshot(f"{shots}/live.png")
        errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
        report["live"] = {"event": name, "shown_after_s": shown, "errors": errors}
    finally:
        driver.quit()
    with open(f"{shots}/report.json", "w") as out:
        json.dump(report, out)
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
