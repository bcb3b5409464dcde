"""One entry for every flow and stage script: what a user can fix exits 2 with `error: ...` on
stderr naming the file or key; any other failure exits 1; the folders come from one layout."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

from dicepipe.config import ConfigError
from dicepipe.entry import run_command
from dicepipe.layout import STAGE_FOLDERS

REPO = Path(__file__).resolve().parents[1]
ENTRIES = {
    "sample": "flows/sample.py",
    "label": "flows/label.py",
    "composite": "flows/composite.py",
    "encode": "flows/encode.py",
    "evaluate": "flows/reevaluate.py",
    "train": "stages/train.py",
    "finetune": "stages/finetune.py",
    "evaluate-stage": "stages/evaluate.py",
}
# A bad value of each entry's section, and the key the message must name.
BAD_VALUES = {
    "sample": ({"sample": {"seed": "zero"}}, "sample.seed: expected int"),
    "label": ({"label": {"batch_size": 0}}, "label.batch_size: 0 is below the minimum 1"),
    "composite": ({"composite": {"count": -1}}, "composite.count: -1 is below the minimum 0"),
    "encode": ({"encode": {"tasks": ["colour"]}}, "encode.tasks[0]: 'colour' is not allowed"),
    "evaluate": ({"evaluate": {"previews": -1}}, "evaluate.previews: -1 is below the minimum 0"),
    "train": ({"train": {"steps": 0}}, "train.steps: 0 is below the minimum 1"),
    "finetune": ({"finetune": {"rnak": 4}}, "finetune: unknown key 'rnak'"),
    "evaluate-stage": ({"evaluate": {"resolution": 4}}, "evaluate.resolution: 4 is below"),
}


def _entry_main(name: str):
    path = REPO / ENTRIES[name]
    spec = importlib.util.spec_from_file_location(f"entry_{name.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_a_bad_params_value_exits_2_naming_the_key(name, tmp_path, capsys):
    params, message = BAD_VALUES[name]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert _entry_main(name)(["--params", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and message in captured.err
    assert "Traceback" not in captured.err + captured.out


@pytest.mark.parametrize("name", ["sample", "train", "evaluate-stage"])
def test_a_missing_or_garbage_params_file_names_the_file(name, tmp_path, capsys):
    missing = tmp_path / "nowhere.yaml"
    assert _entry_main(name)(["--params", str(missing)]) == 2
    assert f"error: {missing}: cannot read the params file" in capsys.readouterr().err
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text("sample: [unclosed\n")
    assert _entry_main(name)(["--params", str(garbage)]) == 2
    assert f"error: {garbage}: not valid YAML" in capsys.readouterr().err


def test_user_errors_exit_2_and_other_failures_exit_1(capsys):
    def bad_input() -> None:
        raise ConfigError("train.steps: 0 is below the minimum 1")

    def broken() -> None:
        raise RuntimeError("the disk is full")

    assert run_command(bad_input) == 2
    assert capsys.readouterr().err == "error: train.steps: 0 is below the minimum 1\n"
    assert run_command(broken) == 1
    assert capsys.readouterr().err == "error: RuntimeError: the disk is full\n"
    assert run_command(lambda: None) == 0


@pytest.mark.parametrize("stage", sorted(STAGE_FOLDERS))
def test_dvc_yaml_reads_and_writes_the_folders_of_the_layout(stage):
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]
    outs = {next(iter(o)) if isinstance(o, dict) else o for o in dvc["outs"]}
    folders = STAGE_FOLDERS[stage]
    written = {folders[n] for n in ("out", "shards", "work") if n in folders}
    read = {path for name, path in folders.items() if name not in ("out", "shards", "work")}
    assert outs == written and read <= set(dvc["deps"])
    assert "--out" not in dvc["cmd"] and "--samples" not in dvc["cmd"]


def test_no_entry_point_needs_an_import_order_exception():
    for path in [*sorted((REPO / "flows").glob("*.py")), *sorted((REPO / "stages").glob("*.py"))]:
        assert "noqa: E402" not in path.read_text(), path


def test_the_flows_default_to_the_layout_folders():
    sys.path.insert(0, str(REPO))
    try:
        main = _entry_main("encode")
    finally:
        sys.path.remove(str(REPO))
    defaults = main.__globals__["encode_flow"].fn.__defaults__
    assert defaults[1:] == tuple(STAGE_FOLDERS["encode"].values())
