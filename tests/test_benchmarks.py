"""Smoke test of the benchmark suite at small size: every case runs and reports (figures not asserted)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_small_benchmark_suite_runs(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import cases
    finally:
        sys.path.pop(0)
    out = tmp_path / "results.json"
    report = tmp_path / "performance.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--size", "small", "--threads", "1",
         "--repeat", "1", "--out", str(out), "--report", str(report)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["schema"] == 1 and doc["size"] == "small"
    done = {r["case"] for r in doc["results"] if "error" not in r}
    assert done == set(cases.CASES)
    for r in doc["results"]:
        assert r["wall_s"]["min"] <= r["wall_s"]["median"] <= r["wall_s"]["max"]
        assert r["peak_rss_mb"] > 0
    text = report.read_text()
    assert "| elp |" in text and "Memory bandwidth" in text
