#!/usr/bin/env python3
"""Drives castle's web page in a real headless Chromium through chromedriver (W3C WebDriver over HTTP,
Python's standard library only): loads the page, places a sell order through the form, sees it in the
book ladder, sends a matching buy order through the API, sees the trade in the tape, and saves a
screenshot.

    serve_page.py --url http://127.0.0.1:PORT --screenshot .ci/artifacts/serve-page.png

Exit 0 when every step was seen; 1 with the failed step on stderr; 77 (the automake convention for a
skipped test) when chromium or chromedriver is not installed.
"""
import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
SKIPPED = 77


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(method, url, body=None, headers=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as error:
        raise SystemExit(f"serve_page: {method} {url}: HTTP {error.code}: {error.read().decode()}")
    return json.loads(text) if text else {}


class Browser:
    def __init__(self, chromedriver, chromium):
        self.port = free_port()
        self.driver = subprocess.Popen(
            [chromedriver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self.wait_until("chromedriver answering", self.driver_ready, seconds=30)
        options = {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900"],
        }
        answer = call("POST", self.base + "/session",
                      {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}})
        self.session = self.base + "/session/" + answer["value"]["sessionId"]

    def driver_ready(self):
        try:
            return call("GET", self.base + "/status", timeout=2)["value"]["ready"]
        except (OSError, SystemExit):
            return False

    def close(self):
        try:
            call("DELETE", self.session)
        finally:
            # chromedriver does not always exit on SIGTERM while its browser closes: then SIGKILL.
            self.driver.terminate()
            try:
                self.driver.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.driver.kill()
                self.driver.wait(timeout=30)

    def go(self, url):
        call("POST", self.session + "/url", {"url": url})

    def find(self, css):
        value = call("POST", self.session + "/element", {"using": "css selector", "value": css})["value"]
        if ELEMENT not in value:
            raise SystemExit(f"serve_page: no element {css}: {value}")
        return value[ELEMENT]

    def type(self, css, text):
        element = self.find(css)
        call("POST", f"{self.session}/element/{element}/clear", {})
        call("POST", f"{self.session}/element/{element}/value", {"text": text})

    def select(self, css, value):
        self.script("document.querySelector(arguments[0]).value = arguments[1];", css, value)

    def click(self, css):
        call("POST", f"{self.session}/element/{self.find(css)}/click", {})

    def script(self, source, *args):
        return call("POST", self.session + "/execute/sync", {"script": source, "args": list(args)})["value"]

    def screenshot(self, path):
        png = base64.b64decode(call("GET", self.session + "/screenshot")["value"])
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as file:
            file.write(png)

    @staticmethod
    def wait_until(what, check, seconds=30):
        # Polls the page's state: WebDriver has no events to wait on. A deadline, not a fixed sleep.
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.1)
        raise SystemExit(f"serve_page: not seen within {seconds} s: {what}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--screenshot", required=True)
    parser.add_argument("--symbol", default="BTC-USD")
    parser.add_argument("--price", default="30000.5")
    arguments = parser.parse_args()

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        print("serve_page: chromium or chromedriver is not installed", file=sys.stderr)
        return SKIPPED

    browser = Browser(chromedriver, chromium)
    try:
        browser.go(f"{arguments.url}/?symbol={arguments.symbol}&account=web-seller")
        browser.wait_until("the stream open", lambda: browser.script(
            "return document.querySelector('#status').dataset.state;") == "open")
        browser.wait_until("the book snapshot", lambda: browser.script(
            "return document.querySelector('#book-seq').textContent;") != "")

        # A sell through the form rests on the ask side of the ladder.
        browser.select("#order-form [name=side]", "sell")
        browser.type("#order-form [name=price]", arguments.price)
        browser.type("#order-form [name=qty]", "0.25")
        browser.click("#order-form button[type=submit]")
        browser.wait_until("the order's answer", lambda: "order" in browser.script(
            "return document.querySelector('#order-result').textContent;"))
        result = browser.script("return document.querySelector('#order-result').textContent;")
        if "open" not in result:
            raise SystemExit(f"serve_page: the form's order was not opened: {result}")
        ask = f"#ladder tr[data-side=sell][data-price='{arguments.price}']"
        browser.wait_until("the sell in the ladder", lambda: browser.script(
            "const row = document.querySelector(arguments[0]);"
            "return row ? row.querySelector('td.ask').textContent : null;", ask) == "0.25")
        browser.wait_until("the sell among my open orders", lambda: browser.script(
            "return document.querySelectorAll('#my-orders tbody tr').length;") == 1)

        # The chart draws the trades: nothing yet.
        chart_drawn = ("const c = document.querySelector('#chart');"
                       "const pixels = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                       "for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) return true;"
                       "return false;")
        if browser.script(chart_drawn):
            raise SystemExit("serve_page: the chart draws something before any trade")

        # A matching buy from another account, through the API: a trade in the tape, the level gone.
        call("POST", arguments.url + "/v1/orders",
             {"symbol": arguments.symbol, "side": "buy", "type": "limit", "price": arguments.price,
              "qty": "0.1", "tif": "ioc"},
             headers={"X-Castle-Account": "api-buyer"})
        browser.wait_until("the trade in the tape", lambda: browser.script(
            "const row = document.querySelector('#tape tbody tr');"
            "return row ? [...row.children].map((cell) => cell.textContent) : null;") is not None
            and browser.script("return document.querySelector('#tape tbody tr').children[2].textContent;")
            == arguments.price)
        browser.wait_until("the rest of the sell in the ladder", lambda: browser.script(
            "const row = document.querySelector(arguments[0]);"
            "return row ? row.querySelector('td.ask').textContent : null;", ask) == "0.15")
        browser.wait_until("the trade on the chart", lambda: browser.script(chart_drawn))
        browser.screenshot(arguments.screenshot)
        # The page's stream is one client in serve's metrics.
        with urllib.request.urlopen(arguments.url + "/metrics", timeout=60) as response:
            metrics = response.read().decode()
        clients = [line.split()[1] for line in metrics.splitlines() if line.startswith("castle_ws_clients ")]
        if clients != ["1.0"]:
            raise SystemExit("serve_page: /metrics does not count the page's stream as castle_ws_clients 1:\n" + metrics)
        print(f"serve_page: ok, screenshot in {arguments.screenshot}")
        return 0
    finally:
        browser.close()


if __name__ == "__main__":
    sys.exit(main())
