"""Build an evidence pack: a directory an auditor can read, print and verify.

    <pack>/evidence.html      one self-contained, printable document (reports/evidence_report.py)
    <pack>/evidence.pdf       printed from it by headless Chromium, when Chromium is installed
    <pack>/evidence.json      the same facts for machines (schema_version)
    <pack>/runs/<run>/        every included run's result.json (byte for byte) and report.html
    <pack>/manifest.sha256    `sha256sum -c` compatible: one line per file above
    <pack>/signoff.json       approvals added later by `chaosdrill evidence sign` (not in the manifest)

Numbers come from the copied result.json bytes themselves (read once, hashed, copied, parsed), so
what the pack says is exactly what it ships.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.config import Targets
from harness.errors import ConfigError, HarnessError
from harness.evidence import assess
from harness.evidence.period import Period
from harness.evidence.policy import Policy, targets_of
from harness.evidence.remediation import Item
from harness.history import HEADLINE_LABELS, RESULT_NAME, RunSummary, Skipped, load_history, read_many
from harness.results import chaosdrill_version

SCHEMA_VERSION = 1
MANIFEST = "manifest.sha256"
SIGNOFF = "signoff.json"
NOT_IN_MANIFEST = {MANIFEST, SIGNOFF, f"{SIGNOFF}.tmp"}
VERSION_NAMES = {"postgres": "PostgreSQL", "redis": "Redis", "pgbackrest": "pgBackRest", "app": "app",
                 "chaosdrill": "chaosdrill"}
ALL_TIME = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
SCORE_DEFINITION = ("per control: met 100, expired evidence 75, not met 50, no evidence 0; the resilience "
                    "score is the mean over the policy's controls (docs/evidence.md)")


@dataclass
class PackResult:
    path: Path
    evidence: dict[str, Any]
    pdf: Path | None
    pdf_note: str


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "run"


def check_out_dir(out: Path) -> Path:
    """A new or empty directory whose parent can be written; a pack is never written over another."""
    out = Path(out).absolute()
    if out.exists():
        if not out.is_dir():
            raise ConfigError(f"--out: {out} is a file; allowed: a new or empty directory")
        if any(out.iterdir()):
            raise ConfigError(f"--out: {out} is not empty; allowed: a new or empty directory (packs are never overwritten)")
    from harness.inputs import check_writable_dir

    return check_writable_dir(out, "--out")


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def print_pdf(html: Path, pdf: Path, timeout: float = 180) -> None:
    """Print `html` to `pdf` with headless Chromium (offline flags: it reaches no network)."""
    binary = chromium_binary()
    if binary is None:
        raise HarnessError("chromium is not installed")
    profile = tempfile.mkdtemp(prefix="chaosdrill-chromium-")
    try:
        proc = subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                               "--disable-background-networking", "--disable-component-update", "--disable-sync",
                               f"--user-data-dir={profile}", "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
                               html.as_uri()], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HarnessError(f"printing the PDF failed ({type(exc).__name__})") from None
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if proc.returncode != 0 or not pdf.is_file() or pdf.stat().st_size == 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        raise HarnessError(f"printing the PDF failed (chromium exit {proc.returncode}: {last})")


def _write(path: Path, data: bytes | str, digests: dict[str, str] | None = None) -> None:
    """Write a new file (owner-only); with `digests`, remember its SHA-256 so the manifest need not re-read it."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(raw)
    if digests is not None:
        digests[str(path)] = hashlib.sha256(raw).hexdigest()


class _Writer:
    """Writes the runs' files in a background thread while the pack is assessed and rendered: creating
    ~5,000 files is kernel time (the GIL is free), so on 2 cores it overlaps the Python work. At most
    `limit` files wait in memory; the first error is raised by `put` or `close`."""

    def __init__(self, digests: dict[str, str], limit: int = 256) -> None:
        self.digests = digests
        self.error: BaseException | None = None
        self.jobs: queue.Queue = queue.Queue(maxsize=limit)
        self.thread = threading.Thread(target=self._run, name="evidence-pack-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            if self.error is None:
                path, data, digest = job
                try:
                    _write(path, data)
                    self.digests[str(path)] = digest or hashlib.sha256(data).hexdigest()
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    self.error = exc

    def put(self, path: Path, data: bytes, digest: str | None = None) -> None:
        if self.error is not None:
            raise self.error
        self.jobs.put((path, data, digest))

    def close(self) -> None:
        """Wait for every file; raise the first error."""
        if self.thread.is_alive():
            self.jobs.put(None)
            self.thread.join()
        if self.error is not None:
            raise self.error


def write_manifest(pack: Path, digests: dict[str, str] | None = None) -> Path:
    """`<sha256>  <relative path>` for every file of the pack but the manifest and the sign-off, sorted.
    A file written by this build is hashed from the bytes written (`digests`), any other one is read."""
    lines = []
    known = digests or {}
    for dirpath, dirnames, filenames in os.walk(pack):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, pack).replace(os.sep, "/")
            if rel in NOT_IN_MANIFEST:
                continue
            lines.append(f"{known.get(full) or sha256_file(Path(full))}  {rel}")
    lines.sort(key=lambda line: line[66:])
    path = pack / MANIFEST
    _write(path, "\n".join(lines) + "\n")
    return path


def _versions(runs: list[RunSummary]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, int]] = {}
    for r in runs:
        for comp, ver in r.versions.items():
            seen.setdefault(comp, {})
            seen[comp][ver] = seen[comp].get(ver, 0) + 1
    out = []
    for comp in [*VERSION_NAMES, *sorted(set(seen) - set(VERSION_NAMES))]:
        found = seen.get(comp, {})
        out.append({"component": VERSION_NAMES.get(comp, comp),
                    "versions": [{"version": v, "runs": n} for v, n in sorted(found.items(), key=lambda kv: -kv[1])],
                    "recorded": bool(found)})
    return out


def _run_entry(r: RunSummary, outcome: str, reason: str, digest: str, files: dict[str, str]) -> dict[str, Any]:
    return {"run_id": r.run_id, "scenario": r.scenario, "kind": r.kind, "started_at": r.started_at,
            "finished_at": r.finished_at, "verdict": r.verdict, "outcome": r.outcome, "evidence_outcome": outcome,
            "reason": reason, "headline": r.headline, "schema_version": r.schema_version,
            "result_sha256": digest, "files": files}


def build_pack(results: Path, out: Path, policy: Policy, policy_source: str, policy_text: str, period: Period,
               *, targets: Targets | None = None, items: list[Item] | None = None, remediation_source: str | None = None,
               now: datetime | None = None, pdf: bool = True, progress=lambda _msg: None) -> PackResult:

    now = now or datetime.now(UTC)
    tz = policy.tz
    results = Path(results)
    out = check_out_dir(out)
    # the period's result.json files that the index could not answer are read once, here, and kept
    fresh: dict[str, tuple[RunSummary, bytes]] = {}
    hist = load_history(results, series=False, raw_between=(period.start, period.end), raw=fresh)
    prev = period.previous()
    goals = targets_of(policy, targets)
    progress(f"{len(hist.runs)} run(s) in {results}; building the pack for {period.label}")

    # The period's runs: read once, hashed, copied byte for byte, and summarised from those bytes.
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    (out / "runs").mkdir(mode=0o700)
    digests: dict[str, str] = {}
    included: list[RunSummary] = []
    entries: dict[str, tuple[str, dict[str, str]]] = {}
    skipped: list[Skipped] = list(hist.skipped)
    used_names: set[str] = set()
    wanted = hist.select(since=period.start, until=period.end)
    # from the index: read the bytes now and summarise them again (the file is the truth), in two processes
    # when there are many; a file whose run moved out of the period since is still the one indexed for it
    again = [(c.path, str((results / c.path if c.path != "." else results) / RESULT_NAME))
             for c in wanted if c.path not in fresh]
    reread = dict(zip((rel for rel, _ in again), read_many(again, ALL_TIME), strict=True))
    writer = _Writer(digests)
    try:
        for cached in wanted:
            run_dir = results / cached.path if cached.path != "." else results
            if cached.path in fresh:  # read by load_history in this build: the summary is of these very bytes
                (summary, raw), skip = fresh.pop(cached.path), None
            else:
                summary, skip, raw = reread.pop(cached.path)
            if summary is None or raw is None:
                skipped.append(skip or Skipped(cached.path, "changed while the pack was built"))
                continue
            name = _safe_name(cached.path if cached.path != "." else summary.run_id)
            while name in used_names:
                name += "_"
            used_names.add(name)
            # flat (runs/<run>.result.json, runs/<run>.report.html): no directory per run to create
            digest = hashlib.sha256(raw).hexdigest()
            writer.put(out / "runs" / f"{name}.{RESULT_NAME}", raw, digest)
            files = {"result": f"runs/{name}.{RESULT_NAME}"}
            try:
                with open(run_dir / "report.html", "rb") as f:
                    report = f.read()
            except OSError:
                report = None
            if report is not None:
                writer.put(out / "runs" / f"{name}.report.html", report)
                files["report"] = f"runs/{name}.report.html"
            included.append(summary)
            entries[summary.run_id] = (digest, files)
        del reread, fresh
        return _assemble(results, out, policy, policy_source, policy_text, period, hist, goals, prev, included,
                         entries, skipped, digests, writer, items=items, remediation_source=remediation_source,
                         now=now, tz=tz, pdf=pdf, progress=progress)
    finally:
        try:
            writer.close()
        except BaseException:  # noqa: BLE001 - an error already on its way out wins; _assemble closed it otherwise
            pass


def _assemble(results: Path, out: Path, policy: Policy, policy_source: str, policy_text: str, period: Period,
              hist, goals: dict[str, float], prev: Period, included: list[RunSummary],
              entries: dict[str, tuple[str, dict[str, str]]], skipped: list[Skipped], digests: dict[str, str],
              writer: _Writer, *, items, remediation_source, now: datetime, tz, pdf: bool, progress) -> PackResult:
    """The assessment, evidence.json/.html (and .pdf) and the manifest, while `writer` copies the runs."""
    from reports.evidence_report import render_evidence

    inside = {r.run_id for r in included}
    everything = [r for r in hist.runs if r.run_id not in inside] + included
    everything.sort(key=lambda r: (r.start, r.run_id))

    judged_all: dict[str, list[tuple[RunSummary, str, str]]] = {}
    verdict_of: dict[str, tuple[str, str]] = {}
    for r in everything:
        o, why = assess.judge_run(r, goals)
        verdict_of[r.run_id] = (o, why)
        judged_all.setdefault(r.scenario, []).append((r, o, why))
    eval_at = min(period.end, now)
    coverage, controls, score = assess.assess_controls(policy, judged_all, period, eval_at)
    trend = assess.score_trend(policy, judged_all, period, now)
    prev_runs = [r for r in everything if prev.start <= r.start < prev.end]
    frame = assess.objective_frame(included, goals, {k: v[0] for k, v in verdict_of.items()})
    prev_frame = assess.objective_frame(prev_runs, goals, {k: v[0] for k, v in verdict_of.items()})
    objectives = assess.objectives_table(frame, prev_frame)
    head = frame[frame["key"] != ""]
    points = [{"run_id": rid, "scenario": sc, "key": k, "started_at": t.isoformat(), "achieved": assess._clean(a),
               "target": assess._clean(tg), "passed": None if p is None or p != p else bool(p)}
              for rid, sc, k, t, a, tg, p in zip(head["run_id"], head["scenario"], head["key"], head["started_at"],
                                                 head["achieved"], head["target"], head["passed"], strict=True)]
    remediation = assess.remediation(items or [], period, judged_all, prev)
    outcomes = {k: 0 for k in ("passed", "failed", "aborted", "inconclusive", "not measured")}
    for r in included:
        outcomes[verdict_of[r.run_id][0]] += 1
    runs_json = [_run_entry(r, *verdict_of[r.run_id], *entries[r.run_id]) for r in included]
    deviations = [{"run_id": e["run_id"], "scenario": e["scenario"], "started_at": e["started_at"],
                   "outcome": e["evidence_outcome"], "reason": e["reason"] or "—", "report": e["files"].get("report")}
                  for e in runs_json if e["evidence_outcome"] != "passed"]
    drills = [{"run_id": r.run_id, "scenario": r.scenario, "kind": r.kind, "started_at": r.started_at,
               "outcome": verdict_of[r.run_id][0], "rto_s": r.headline.get("rto"), "rpo_s": r.headline.get("rpo"),
               **(r.drill or {}), "report": entries[r.run_id][1].get("report")}
              for r in included if r.drill is not None]
    previous_score = trend[-2]["score"] if len(trend) > 1 else None
    pdf_binary = chromium_binary() if pdf else None
    pdf_note = ("evidence.pdf: printed from evidence.html by headless Chromium" if pdf_binary else
                "no evidence.pdf: " + ("Chromium is not installed (`make deps` installs it on Debian); "
                                       "print evidence.html from any browser" if pdf else "not asked for (--no-pdf)"))
    evidence = {
        "schema_version": SCHEMA_VERSION, "kind": "chaosdrill evidence pack",
        "generated_at": now.astimezone(tz).isoformat(timespec="seconds"),
        "generated_by": {"chaosdrill": chaosdrill_version(), "host": socket.gethostname()},
        "organisation": policy.organisation.name,
        "period": {"label": period.label, "kind": period.kind, "start": period.start.isoformat(),
                   "end": period.end.isoformat(), "time_zone": policy.organisation.time_zone,
                   "evaluated_at": eval_at.astimezone(tz).isoformat(timespec="seconds"),
                   "complete": now >= period.end},
        "previous_period": {"label": prev.label, "start": prev.start.isoformat(), "end": prev.end.isoformat()},
        "policy": {"source": policy_source, "sha256": hashlib.sha256(policy_text.encode()).hexdigest(),
                   "drills": {k: {"every_days": d.every, "purpose": d.purpose} for k, d in policy.drills.items()},
                   "objectives": goals, "archive": policy.archive.model_dump()},
        "remediation_source": remediation_source,
        "scope": {"systems": list(policy.scope.systems), "assets": list(policy.scope.assets)},
        "versions": _versions(included),
        "participants": [p.model_dump() for p in policy.participants], "approver": policy.approver.model_dump(),
        "summary": {"runs": len(included), "runs_in_history": len(hist.runs), "outcomes": outcomes,
                    "controls": len(controls), "controls_met": sum(c["status"] == "met" for c in controls),
                    "score": score, "previous_score": previous_score,
                    "score_delta": None if previous_score is None else round(score - previous_score, 1)},
        "controls": controls, "coverage": list(coverage.values()), "objectives": objectives,
        "objective_points": points, "objective_labels": HEADLINE_LABELS, "drills": drills,
        "deviations": deviations, "remediation": remediation,
        "score": {"definition": SCORE_DEFINITION, "value": score, "scores": assess.SCORES, "trend": trend},
        "runs": runs_json, "skipped": [{"path": s.path, "reason": s.reason} for s in skipped],
        "pdf": {"planned": pdf_binary is not None, "note": pdf_note},
    }
    progress(f"{len(included)} run(s) included; rendering")
    # one object per line at the top level: readable, and json's C encoder (indent= would be pure Python)
    body = ",\n".join(f"{json.dumps(k)}: {json.dumps(v, default=str, separators=(',', ':'))}" for k, v in evidence.items())
    _write(out / "evidence.json", "{\n" + body + "\n}\n", digests)
    html_path = out / "evidence.html"
    _write(html_path, render_evidence(evidence), digests)
    pdf_path = None
    if pdf_binary:
        progress("printing evidence.pdf with headless Chromium")
        pdf_path = out / "evidence.pdf"
        print_pdf(html_path, pdf_path)
        pdf_path.chmod(0o600)
    writer.close()  # every run file written (or its error raised) before the manifest lists them
    write_manifest(out, digests)
    return PackResult(out, evidence, pdf_path, pdf_note)
