"""What `pip install mgll` puts on a machine: the wheel must carry every data file the code reads at run
time (pipeline files, the dataset schema, the report vocabularies), so an installed copy works without
the source tree beside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DATA = ("pipelines/*.yaml", "schemas/*.json", "vocabularies/*.yaml")


def test_an_installed_wheel_finds_its_pipelines_schema_and_vocabularies(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "demo-out", "build", "*.egg-info", "__pycache__", ".pytest_cache", "tests", "bench", "docs",
    ))  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path)],
        check=True, capture_output=True,
    )  # fmt: skip
    wheel = next(tmp_path.glob("mgll-*.whl"))
    shipped = {p.relative_to(ROOT).as_posix() for pattern in PACKAGE_DATA for p in (ROOT / "mgll_data").glob(pattern)}
    assert len(shipped) >= 9
    assert shipped <= set(zipfile.ZipFile(wheel).namelist())

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "import mgll_data, mgll_data.pipeline as p, mgll_data.schema as s, mgll_data.reports.vocabulary as v;"
        "print(mgll_data.__file__); print(','.join(p.available())); print(len(s.columns(['disease'])));"
        "print(','.join(v.available())); print(p.load_pipeline('mimic-cxr').name)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(site)},
    ).stdout.splitlines()  # fmt: skip
    assert Path(out[0]).is_relative_to(site), "the probe must import the installed copy, not the source tree"
    assert set(out[1].split(",")) >= {"mimic-cxr", "openi", "folder", "manifest", "fundus"}
    assert int(out[2]) > 10
    assert set(out[3].split(",")) >= {"chexpert", "nih14", "fundus"}
    assert out[4] == "mimic-cxr"
