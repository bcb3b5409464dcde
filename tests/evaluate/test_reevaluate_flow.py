"""The Prefect flow `reevaluate`: its schedule from params (deployment and prefect.yaml), a run
with one task per checkpoint side by side, and (slow) a real scheduled run on a server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from dicepipe.config import load_params
from dicepipe.evaluate.history import read_log
from dicepipe.params.evaluate import EvaluateParams, ReevaluateParams
from tests.evaluate.tiny import fast_params, save_model, write_params

REPO = Path(__file__).resolve().parents[2]


def _reevaluate_params(root: Path, **changes: object) -> ReevaluateParams:
    return replace(fast_params(root).reevaluate, **changes)


def test_the_deployment_carries_the_schedule_from_params(tmp_path):
    from flows.reevaluate import deployment

    params = fast_params(tmp_path, reevaluate=_reevaluate_params(tmp_path, interval_minutes=7.5))
    built = deployment(str(write_params(tmp_path / "params.yaml", params)))
    assert built.entrypoint.endswith("flows/reevaluate.py:reevaluate")
    assert built.parameters == {"params_path": str(tmp_path / "params.yaml")}
    (schedule,) = built.schedules
    assert schedule.schedule.interval == timedelta(minutes=7.5)
    assert built.concurrency_limit == 1

    cron = _reevaluate_params(tmp_path, interval_minutes=None, cron="0 */6 * * *")
    built = deployment(str(write_params(tmp_path / "cron.yaml", replace(params, reevaluate=cron))))
    assert built.schedules[0].schedule.cron == "0 */6 * * *"


def test_prefect_yaml_deploys_the_flow_on_the_schedule_of_params_yaml():
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (entry,) = [d for d in config["deployments"] if d["name"] == "reevaluate"]
    assert entry["entrypoint"] == "flows/reevaluate.py:reevaluate"
    assert entry["parameters"] == {"params_path": "params.yaml"}
    section = load_params(EvaluateParams, REPO / "params.yaml").reevaluate
    (schedule,) = entry["schedules"]
    if section.cron is not None:
        assert schedule == {"cron": section.cron}
    else:
        assert schedule == {"interval": round(section.interval_minutes * 60)}


def test_a_flow_run_evaluates_new_checkpoints_side_by_side_once(tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.reevaluate import main, reevaluate

    good = save_model(tmp_path / "good", seed=5)
    for step, seed in ((10, 0), (20, 1)):
        folder = tmp_path / "runs" / "checkpoints" / f"checkpoint-{step}" / "model"
        shutil.copytree(save_model(tmp_path / f"m{seed}", seed=seed), folder)
    writing = tmp_path / "runs" / "checkpoints" / "checkpoint-30" / "model"
    shutil.copytree(good, writing)
    (writing / "config.json").unlink()
    params = fast_params(tmp_path, tasks=("depth", "point_segmentation"))
    path = str(write_params(tmp_path / "params.yaml", params))

    table = reevaluate(path)
    assert [(r["step"], r["status"]) for r in table] == [
        (10, "evaluated"),
        (20, "evaluated"),
        (30, "broken"),
    ]
    records = read_log(params.reevaluate.log)
    assert [r["step"] for r in records] == [10, 20]
    spans = [
        (datetime.fromisoformat(r["started_at"]), datetime.fromisoformat(r["evaluated_at"]))
        for r in records
    ]
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]  # ran side by side
    with get_client(sync_client=True) as client:
        keys = ArtifactFilterKey(any_=["reevaluate-counts", "reevaluate-summary"])
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=keys))
    assert {a.key for a in artifacts} == {"reevaluate-counts", "reevaluate-summary"}

    shutil.copy2(good / "config.json", writing / "config.json")  # training finished
    assert main(["once", "--params", path]) == 0
    assert [r["step"] for r in read_log(params.reevaluate.log)] == [10, 20, 30]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@pytest.mark.slow
def test_a_served_schedule_evaluates_a_new_checkpoint_on_a_real_server(tmp_path):
    folder = tmp_path / "runs" / "checkpoints" / "checkpoint-7" / "model"
    save_model(folder)
    section = _reevaluate_params(tmp_path, interval_minutes=0.1)  # every 6 s
    params = fast_params(tmp_path, tasks=("depth",), reevaluate=section)
    path = write_params(tmp_path / "params.yaml", params)
    url = f"http://127.0.0.1:{_free_port()}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": url,
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    port = url.rsplit(":", 1)[1].split("/")[0]
    server_cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    logs = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen(
        [*server_cmd, "--port", port], env=env, cwd=REPO, stdout=logs, stderr=logs,
        start_new_session=True,
    )  # fmt: skip
    serve = None
    try:
        _wait(lambda: _healthy(url), 120, "the Prefect server")
        serve = subprocess.Popen(
            [sys.executable, "flows/reevaluate.py", "serve", "--params", str(path)],
            env=env, cwd=REPO, stdout=logs, stderr=logs, start_new_session=True,
        )  # fmt: skip
        log = Path(params.reevaluate.log)
        _wait(lambda: log.is_file() and read_log(log), 240, "a scheduled run's history.jsonl")
        (record,) = read_log(log)
        assert record["step"] == 7 and record["metrics"]["heldout"]["depth"]["model"]
    finally:
        if serve is not None:
            _stop(serve)  # serve before the server; its process group takes its children
        _stop(server)
        logs.close()
