"""Kill anywhere: SIGKILL a run, re-run it plainly, and get the same bytes and no leftovers.

The default suite kills the encode flow once, inside a shard write (the shard is written and
synced, not yet renamed into place). The slow suite kills `dvc repro encode` (sample, label,
composite, encode) ten times, at seeded moments spread over the four stages, each time from
the state an uninterrupted run had when that stage started, and re-runs `dvc repro encode`.

Compared: every file under `data/shards` and `data/work` (sha256). None is excluded: the
summaries (`summary.json` of each stage) hold counts and reasons, no wall times (the label
summary's model-cache counters are null here: the sample's labels are exact).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dicepipe.config import load_params
from dicepipe.params.label import LabelParams
from dicepipe.params.sample import SampleParams
from dicepipe.pipeline import label, sample
from dicepipe.teachers import make_teacher
from tests.project import (
    DATA_STAGES,
    QUICK_DATA,
    REPO,
    copy_project,
    data_digests,
    digests,
    project_env,
    set_params,
    temporaries,
)

SEED = 20260
KILLS = 10
RUNNING = re.compile(r"Running stage '(\w+)'")

# ------------------------------------------------------------------ the encode flow, once

KILL_AT_RENAME = """
import os, runpy, signal, sys
from pathlib import Path

shards, victim = Path(sys.argv[1]).resolve(), int(sys.argv[2])
real_replace, renamed = os.replace, []


def dying(src, dst, **kwargs):
    if Path(dst).resolve().parent == shards and Path(dst).suffix == ".parquet":
        renamed.append(dst)
        if len(renamed) == victim:  # written and synced, not yet in place: no cleanup runs
            os.killpg(os.getpgrp(), signal.SIGKILL)
    return real_replace(src, dst, **kwargs)


os.replace = dying
sys.argv = ["flows/encode.py", *sys.argv[3:]]
runpy.run_path("flows/encode.py", run_name="__main__")
"""


@pytest.fixture(scope="module")
def encode_inputs(tmp_path_factory, keep_torch_threads) -> Path:
    """Sampled units (every source, a few units each) and their exact labels, made in-process
    from the embedded sample; no composites."""
    root = tmp_path_factory.mktemp("encode-kill")
    shutil.copy2(REPO / "params.yaml", root / "params.yaml")
    set_params(root, {**QUICK_DATA, ("label", "num_workers"): 0})
    with contextlib.chdir(REPO):  # the params name the sample by paths relative to the project
        params = load_params(SampleParams, root / "params.yaml")
        for unit in sample.plan(params):
            sample.run_unit(unit, params, root / "samples")
        labelling = load_params(LabelParams, root / "params.yaml")
        teacher = make_teacher(labelling)
        for path in label.plan(labelling, root / "samples"):
            label.run_unit(path, teacher, labelling, root / "labels")
    (root / "composites").mkdir()
    return root


def _encode_args(inputs: Path, out: Path) -> list[str]:
    folders = {"samples": "samples", "labels": "labels", "composites": "composites"}
    args = ["--params", str(inputs / "params.yaml")]
    args += [arg for name, sub in folders.items() for arg in (f"--{name}", str(inputs / sub))]
    return args + ["--shards", str(out / "shards"), "--work", str(out / "work")]


def _start(args: list[str], prefect_home: Path | None = None, **popen) -> subprocess.Popen:
    env = project_env(REPO)
    if prefect_home is not None:
        env["PREFECT_HOME"] = str(prefect_home)
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def _finish(process: subprocess.Popen) -> tuple[int, str]:
    output, _ = process.communicate(timeout=300)
    return process.returncode, output[-5000:]


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.parquet")}


def test_an_encode_flow_killed_inside_a_write_resumes_to_the_same_bytes(encode_inputs, tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    # Side by side with the killed run (its own Prefect home): the flows mostly start up.
    uninterrupted = _start(
        ["flows/encode.py", *_encode_args(encode_inputs, reference)], tmp_path / "prefect"
    )
    killer = ["-c", KILL_AT_RENAME, str(killed / "shards"), "4"]
    status, output = _finish(
        _start([*killer, *_encode_args(encode_inputs, killed)], start_new_session=True)
    )
    assert status == -signal.SIGKILL, output
    assert list((killed / "shards").glob(".*.parquet.*.tmp"))  # killed mid-write
    finished = {p.stem for p in (killed / "work" / "errors").glob("*.parquet")}
    before = {
        n: t for n, t in _mtimes(killed / "shards").items() if n.rsplit("-", 1)[0] in finished
    }
    assert before

    status, output = _finish(_start(["flows/encode.py", *_encode_args(encode_inputs, killed)]))

    assert status == 0, output
    assert _finish(uninterrupted)[0] == 0
    assert temporaries(killed) == []
    after = _mtimes(killed / "shards")
    assert {name: after[name] for name in before} == before  # finished units were not redone
    assert len(after) > len(before)
    for folder in ("shards", "work"):
        assert digests(killed / folder) == digests(reference / folder), folder


# ------------------------------------------------------------ `dvc repro`, ten times (slow)


@dataclass
class Repro:
    """A `dvc repro` running in its own session, its output lines timed as they come."""

    process: subprocess.Popen
    lines: list[tuple[float, str]] = field(default_factory=list)

    def read(self) -> None:
        """Collect output lines with their arrival time until the process closes stdout."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line))

    def started(self, stage: str) -> float | None:
        """When DVC announced `stage`, if it has."""
        return next((t for t, line in self.lines if f"Running stage '{stage}'" in line), None)

    def stage_at(self, moment: float) -> str:
        """The stage that was running at `moment` (the last one announced before it)."""
        names = [
            m.group(1) for t, line in self.lines if t <= moment and (m := RUNNING.search(line))
        ]
        return names[-1] if names else "dvc"

    def output(self) -> str:
        """Everything it printed."""
        return "".join(line for _, line in self.lines)


def start_repro(root: Path, target: str = "encode") -> tuple[Repro, threading.Thread]:
    """Start `dvc repro TARGET` in `root`, in a new session (its own process group)."""
    env = {**project_env(root), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", target],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    repro = Repro(process)
    reader = threading.Thread(target=repro.read, daemon=True)
    reader.start()
    return repro, reader


def finish(repro: Repro, reader: threading.Thread, timeout: float = 600) -> None:
    """Wait for a run to end by itself and assert that it succeeded."""
    repro.process.wait(timeout)
    reader.join(30)
    assert repro.process.returncode == 0, repro.output()[-5000:]


def kill_during(root: Path, stage: str, delay: float) -> str:
    """Run `dvc repro encode` in `root`, SIGKILL its whole process group `delay` seconds after
    `stage` starts, and return the stage that was running then ("finished" if none was)."""
    repro, reader = start_repro(root)
    deadline = time.monotonic() + 300
    while (start := repro.started(stage)) is None and repro.process.poll() is None:
        assert time.monotonic() < deadline, repro.output()[-3000:]
        time.sleep(0.05)
    assert start is not None, repro.output()[-3000:]
    time.sleep(max(0.0, start + delay - time.monotonic()))
    moment = time.monotonic()
    if repro.process.poll() is not None:
        return "finished"
    os.killpg(repro.process.pid, signal.SIGKILL)
    repro.process.wait(60)
    reader.join(30)
    assert survivors(repro.process.pid) == []
    return repro.stage_at(moment)


def survivors(session: int) -> list[str]:
    """Live processes of a session (a SIGKILL of its process group should leave none)."""
    import psutil

    time.sleep(0.5)  # orphans are reaped by init: give it a moment
    found = []
    for process in psutil.process_iter(["pid", "status", "cmdline"]):
        with contextlib.suppress(ProcessLookupError, PermissionError, psutil.Error):
            if os.getsid(process.pid) == session and process.status() != psutil.STATUS_ZOMBIE:
                found.append(" ".join(process.info["cmdline"] or []))
    return found


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory) -> dict[str, object]:
    """An uninterrupted run, stage by stage: the project as it was before each stage, how
    long each stage ran (from DVC's announcement to the end), and the final outputs."""
    base = tmp_path_factory.mktemp("kill-anywhere")
    root = copy_project(base / "reference", QUICK_DATA)
    before, window = {}, {}
    for stage in DATA_STAGES:
        before[stage] = base / f"before-{stage}"
        shutil.copytree(root, before[stage], symlinks=True)
        repro, reader = start_repro(root, stage)
        finish(repro, reader)
        window[stage] = time.monotonic() - repro.started(stage)
    return {"before": before, "window": window, "outputs": data_digests(root)}


def kill_plan(window: dict[str, float]) -> list[tuple[str, float]]:
    """KILLS (stage, delay after its start): stages in turn, delays seeded within 2-80% of
    the stage's uninterrupted run."""
    plan = []
    for number in range(KILLS):
        stage = DATA_STAGES[number % len(DATA_STAGES)]
        fraction = random.Random(SEED + number).uniform(0.02, 0.8)
        plan.append((stage, round(fraction * window[stage], 2)))
    return plan


def kill_from(snapshot: Path, root: Path, stage: str, delay: float) -> tuple[str, float]:
    """Copy `snapshot` to `root` and kill a run there `delay` s into `stage`; where the kill
    landed and when. A run that finished first (a faster machine) is killed sooner instead."""
    while True:
        shutil.copytree(snapshot, root, symlinks=True)
        where = kill_during(root, stage, delay)
        if where != "finished" or delay < 0.5:
            return where, delay
        shutil.rmtree(root)
        delay = round(delay / 2, 2)


@pytest.mark.slow
def test_dvc_repro_killed_anywhere_resumes_to_the_same_bytes(snapshots, tmp_path):
    landed, failures = Counter(), []
    for number, (stage, planned) in enumerate(kill_plan(snapshots["window"])):
        root = tmp_path / f"kill-{number}"
        where, delay = kill_from(snapshots["before"][stage], root, stage, planned)
        landed[where] += 1
        print(f"kill {number}: {delay:6.2f} s after {stage} started, landed in {where}")
        repro, reader = start_repro(root)
        finish(repro, reader)
        outputs, left = data_digests(root), temporaries(root)
        expected = snapshots["outputs"]
        changed = sorted(
            k for k in outputs.keys() | expected.keys() if outputs.get(k) != expected.get(k)
        )
        if changed or left:
            failures.append(
                f"kill {number} in {where} at +{delay} s: differ {changed}, left {left}"
            )
        shutil.rmtree(root)
    windows = {name: round(seconds, 1) for name, seconds in snapshots["window"].items()}
    print(f"kills landed: {dict(landed)}; stage windows (s): {windows}")
    assert failures == []
    assert "finished" not in landed and len(set(landed) - {"dvc"}) >= 3, landed
