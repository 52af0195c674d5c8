#!/usr/bin/env python3
"""Drives a real headless Chromium through the DevTools protocol, for the console tests.

Reads a JSON list of steps on stdin, runs them in one browser tab, and prints one JSON
object per step on stdout (in order). A step is one of:

  {"goto": URL}                       load a page and wait for it
  {"fill": [CSS, VALUE]}              set an input's or a select's value
  {"click": CSS}                      click, and wait for the page it loads (if any)
  {"submit": CSS}                     submit a form, and wait for the next page
  {"text": CSS}                       -> {"text": innerText of the first match, or null}
  {"texts": CSS}                      -> {"texts": [innerText of every match]}
  {"count": CSS}                      -> {"count": number of matches}
  {"url": null}                       -> {"url": the current URL}
  {"screenshot": PATH}                -> {"png": PATH, "width": W, "height": H} (whole page)
  {"timing": null}                    -> {"ms": load time of the current page, navigation timing}

Any failure prints {"error": ...} for that step and stops with exit status 1. The browser is
Debian's chromium (CHROMIUM to override); no network access is needed beyond the pages.

With --ignore-certificate-errors, a server certificate the browser does not trust (a test
CA's) is accepted; the HTTPS itself is tested elsewhere, the pages here.
"""

import base64
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket  # websocket-client, from PyPI

STEP_TIMEOUT = 30.0


def find_chromium():
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    sys.exit("no chromium found: apt-get install chromium (or set CHROMIUM)")


class Tab:
    def __init__(self, insecure=False):
        self.profile = tempfile.mkdtemp(prefix="vigil-chromium-")
        self.proc = subprocess.Popen(
            [find_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-background-networking",
             "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
             "--window-size=1400,1000", "--user-data-dir=" + self.profile,
             *(["--ignore-certificate-errors"] if insecure else []), "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 30
        while not os.path.exists(port_file) or os.path.getsize(port_file) == 0:
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not start (no DevToolsActivePort)")
            time.sleep(0.05)
        port = int(open(port_file).read().split()[0])
        pages = []
        while not pages:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                pages = [p for p in json.load(r) if p.get("type") == "page"]
            if time.time() > deadline:
                raise RuntimeError("chromium shows no page")
            time.sleep(0.05)
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=STEP_TIMEOUT,
                                              suppress_origin=True)
        self.next_id = 0
        self.events = []
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method, **params):
        self.next_id += 1
        ident = self.next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == ident:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method, timeout=STEP_TIMEOUT):
        deadline = time.time() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e["method"] == method:
                    del self.events[: i + 1]
                    return e
            self.events.clear()
            if time.time() > deadline:
                raise RuntimeError(f"timed out waiting for {method}")
            self.ws.settimeout(max(0.1, deadline - time.time()))
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"script failed: {r['exceptionDetails'].get('text')} in {expr}")
        return r.get("result", {}).get("value")

    def navigate_by(self, expr):
        """Runs `expr`, which starts a navigation, and waits for the new page's load."""
        self.events.clear()
        self.eval(expr)
        self.wait_event("Page.loadEventFired")

    def close(self):
        try:
            self.ws.close()
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            shutil.rmtree(self.profile, ignore_errors=True)


def q(selector):
    return json.dumps(selector)


def run_step(tab, step):
    (kind, arg), = step.items()
    if kind == "goto":
        tab.events.clear()
        r = tab.call("Page.navigate", url=arg)
        if r.get("errorText"):
            raise RuntimeError(f"cannot load {arg}: {r['errorText']}")
        tab.wait_event("Page.loadEventFired")
        return {}
    if kind == "fill":
        sel, value = arg
        found = tab.eval(f"""(() => {{ const e = document.querySelector({q(sel)}); if (!e) return false;
            if (e.tagName === 'SELECT' && ![...e.options].some(o => o.value === {q(value)})) {{
              const o = document.createElement('option'); o.value = {q(value)}; o.text = {q(value)}; e.add(o); }}
            e.value = {q(value)}; e.dispatchEvent(new Event('input', {{bubbles: true}}));
            e.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()""")
        if not found:
            raise RuntimeError(f"nothing matches {sel}")
        return {}
    if kind in ("click", "submit"):
        if not tab.eval(f"!!document.querySelector({q(arg)})"):
            raise RuntimeError(f"nothing matches {arg}")
        action = "click()" if kind == "click" else "requestSubmit()"
        tab.navigate_by(f"document.querySelector({q(arg)}).{action}")
        return {}
    if kind == "text":
        return {"text": tab.eval(f"(() => {{ const e = document.querySelector({q(arg)}); return e ? e.innerText : null; }})()")}
    if kind == "texts":
        return {"texts": tab.eval(f"[...document.querySelectorAll({q(arg)})].map(e => e.innerText)")}
    if kind == "count":
        return {"count": tab.eval(f"document.querySelectorAll({q(arg)}).length")}
    if kind == "url":
        return {"url": tab.eval("location.href")}
    if kind == "timing":
        return {"ms": tab.eval("(() => { const n = performance.getEntriesByType('navigation')[0]; return n ? n.loadEventEnd - n.startTime : null; })()")}
    if kind == "screenshot":
        metrics = tab.call("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        width, height = int(size["width"]), min(int(size["height"]), 4000)
        shot = tab.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                        clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1})
        data = base64.b64decode(shot["data"])
        with open(arg, "wb") as f:
            f.write(data)
        w, h = struct.unpack(">II", data[16:24])
        return {"png": arg, "width": w, "height": h}
    raise RuntimeError(f"unknown step {kind}")


def main():
    steps = json.load(sys.stdin)
    tab = Tab(insecure="--ignore-certificate-errors" in sys.argv[1:])
    status = 0
    try:
        for step in steps:
            try:
                out = run_step(tab, step)
            except Exception as e:  # reported as the step's result, the run stops
                print(json.dumps({"error": f"{step}: {e}"}), flush=True)
                status = 1
                break
            print(json.dumps(out), flush=True)
    finally:
        tab.close()
    sys.exit(status)


if __name__ == "__main__":
    main()
