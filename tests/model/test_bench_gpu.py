"""scripts/bench_gpu.py --smoke: the GPU benchmark runs end to end (tiny experiment and model, on the CPU) and its
JSON holds a positive rate for every configuration, prediction and DeepLIFT-SHAP, and the memory used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_gpu_smoke_reports_every_figure(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(ROOT / "scripts/bench_gpu.py"), "--smoke", "--json", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert json.loads(done.stdout.strip().splitlines()[-1]) == result
    assert result["device"].startswith("CPU")
    seen = {(row["input"], row["mixed"], row["xla"]) for row in result["training"]}
    assert seen == {("synthetic", False, False), ("synthetic", True, True), ("cached", False, False),
                    ("streamed", False, False)}
    for row in result["training"]:
        assert row["examples_per_s"] > 0 and row["memory_gb"] > 0.3, row  # TensorFlow alone holds ~0.7 GB
    assert result["prediction"]["examples_per_s"] > 0
    assert result["shap"]["pairs_per_s"] > 0 and result["shap"]["shuffles"] == 2
    assert "examples/s" in done.stdout and "pairs/s" in done.stdout  # the table
