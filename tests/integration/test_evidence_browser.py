"""The evidence pack in headless Chromium, driven over the DevTools protocol (aiohttp's websocket client).

A pack is built from generated runs (written through harness.results.write_run), evidence.html is
loaded from disk, and the test asserts what an auditor's browser would do with it: it renders (a
real, non-blank screenshot), logs no console error or uncaught exception, and fetches nothing but
the file itself (inline CSS and SVG, no fonts, scripts or images from anywhere). evidence.pdf,
printed by the pack builder, has at least one page.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.evidence.pack import build_pack, chromium_binary
from harness.evidence.period import resolve
from harness.evidence.policy import load_policy
from tests.helpers.gen_runs import at, drill_run, fault_run

CHROMIUM = chromium_binary()
NOW = datetime(2027, 1, 5, 12, tzinfo=UTC)
pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                reason="chromium is not installed (`make deps` installs it on Debian)")


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("evb")
    res = tmp / "results"
    for i, day in enumerate(["2026-10-01", "2026-10-08", "2026-10-15", "2026-11-05", "2026-12-15"]):
        fault_run(res, "db_outage", at(day), outage_s=2.0 if i < 4 else 400.0, seed=i)
    for i, day in enumerate(["2026-10-05", "2026-11-04", "2026-12-04"]):
        drill_run(res, at(day), rto_s=4.0 + i, rpo_s=1.0 + i / 10, seed=20 + i)
    drill_run(res, at("2026-12-10"), rpo_measured=False, seed=30)
    drill_run(res, at("2026-11-20"), scenario="replica_failover", rto_s=2.5, rpo_s=0.2, seed=40)
    fault_run(res, "cache_outage", at("2026-11-11"), no_effect=True, seed=50)
    policy, source = load_policy(None)
    period = resolve("2026-Q4", None, None, policy.tz)
    return build_pack(res, tmp / "pack", policy, source, "", period, now=NOW, pdf=True).path


async def _devtools(url: str, shot: Path, profile: str) -> dict:
    """Open `url` in a fresh headless Chromium; collect console errors, exceptions and every request; screenshot."""
    import aiohttp

    proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                             "--disable-background-networking", "--disable-component-update", "--disable-sync",
                             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                             f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            assert proc.poll() is None, f"chromium exited {proc.returncode}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().splitlines()[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                targets = await resp.json()
            page = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                seq = 0
                events: list[dict] = []

                async def call(method: str, **params) -> dict:
                    nonlocal seq
                    seq += 1
                    await ws.send_json({"id": seq, "method": method, "params": params})
                    while True:
                        msg = json.loads((await ws.receive(timeout=120)).data)
                        if msg.get("id") == seq:
                            assert "error" not in msg, msg
                            return msg["result"]
                        events.append(msg)

                for domain in ("Page", "Runtime", "Log", "Network"):
                    await call(f"{domain}.enable")
                await call("Emulation.setDeviceMetricsOverride", width=1200, height=900, deviceScaleFactor=1,
                           mobile=False)
                await call("Page.navigate", url=url)
                while not any(e.get("method") == "Page.loadEventFired" for e in events):
                    events.append(json.loads((await ws.receive(timeout=120)).data))
                await call("Runtime.evaluate", expression="new Promise(r => setTimeout(r, 300))", awaitPromise=True)
                metrics = await call("Page.getLayoutMetrics")
                height = int(metrics["cssContentSize"]["height"])
                png = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                 clip={"x": 0, "y": 0, "width": 1200, "height": min(height, 6000), "scale": 1})
                shot.write_bytes(base64.b64decode(png["data"]))
                dom = await call("Runtime.evaluate", expression="document.body.innerText", returnByValue=True)
        return {"events": events, "height": height, "text": dom["result"]["value"]}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_evidence_pack_renders_offline_without_errors(pack: Path) -> None:
    html = pack / "evidence.html"
    shot = Path(os.environ.get("CHAOSDRILL_EVIDENCE_SHOT", str(pack.parent / "evidence.png")))
    profile = tempfile.mkdtemp(prefix="chaosdrill-chromium-")
    try:
        seen = asyncio.run(_devtools(html.as_uri(), shot, profile))
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    events = seen["events"]
    errors = [e["params"]["entry"]["text"] for e in events
              if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"]
    errors += [" ".join(str(a.get("value", a.get("description", ""))) for a in e["params"]["args"]) for e in events
               if e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert")]
    errors += [e["params"]["exceptionDetails"].get("text", "") for e in events
               if e.get("method") == "Runtime.exceptionThrown"]
    assert errors == [], errors
    requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    assert requests == [html.as_uri()], f"the page fetched more than itself: {requests}"
    # a real picture of a long document: a PNG, tall, and far from blank (compressed size)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == 1200 and height > 1500 and seen["height"] > 1500
    assert len(data) > 60_000
    text = seen["text"]
    for needed in ("2026-Q4", "SOC 2 A1.3", "Coverage", "Deviations"):
        assert needed in text, f"{needed!r} is not shown"


def test_evidence_pdf_has_pages(pack: Path) -> None:
    pdf = pack / "evidence.pdf"
    assert pdf.is_file() and pdf.read_bytes()[:5] == b"%PDF-"
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, timeout=60, check=True).stdout
        pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
    else:
        pages = len(re.findall(rb"/Type\s*/Page\b", pdf.read_bytes()))
    assert pages >= 1
    manifest = (pack / "manifest.sha256").read_text()
    assert re.search(r"^[0-9a-f]{64}  evidence\.pdf$", manifest, re.M), "the PDF is in the manifest"
