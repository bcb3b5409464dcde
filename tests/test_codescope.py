"""Stage-scoped code identity: the declaration covers what each stage imports, dvc.yaml lists
exactly it, and only edits inside a stage's scope change its code version."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from dicepipe import codescope
from dicepipe.codescope import STAGE_CODE, import_closure, stage_files

REPO = Path(__file__).resolve().parents[1]
DVC_STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _declared_deps(stage: str) -> set[str]:
    return {f"src/dicepipe/{entry}" for entry in STAGE_CODE[stage]}


def _entry(stage: str) -> str:
    """A stage's entry point: its Prefect flow, else its DVC stage script."""
    flow = f"flows/{stage}.py"
    return flow if (REPO / flow).is_file() else f"stages/{stage}.py"


@pytest.mark.parametrize("stage", sorted(STAGE_CODE))
def test_every_module_a_stage_imports_is_in_its_scope(stage):
    missing = import_closure([REPO / _entry(stage)]) - set(stage_files(stage))
    assert not missing, f"{stage} imports modules outside STAGE_CODE: {sorted(map(str, missing))}"


@pytest.mark.parametrize("stage", sorted(STAGE_CODE))
def test_dvc_deps_of_a_stage_are_its_declared_code(stage):
    deps = set(DVC_STAGES[stage]["deps"])
    assert _entry(stage) in deps
    assert {d for d in deps if d.startswith("src/")} == _declared_deps(stage)


def test_the_closure_follows_function_local_imports(tmp_path):
    files = import_closure([REPO / "flows" / "encode.py"])
    names = {f.relative_to(codescope.PACKAGE_DIR).as_posix() for f in files}
    assert "targets/depth.py" in names  # imported inside a function of pipeline/examples.py
    assert "model/__init__.py" not in names and "train/loader.py" not in names


def test_the_check_fails_when_a_stage_imports_an_undeclared_module(tmp_path):
    flow = tmp_path / "flow.py"
    flow.write_text("def run():\n    from dicepipe.train.loader import make_loader\n")
    missing = import_closure([flow]) - set(stage_files("sample"))
    assert codescope.PACKAGE_DIR / "train" / "loader.py" in missing


@pytest.fixture
def package_copy(tmp_path, monkeypatch) -> Path:
    copy = tmp_path / "dicepipe"
    shutil.copytree(codescope.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(codescope, "PACKAGE_DIR", copy)
    codescope.stage_code_version.cache_clear()
    yield copy
    codescope.stage_code_version.cache_clear()


def _version_after_edit(copy: Path, stage: str, relative: str) -> tuple[str, str]:
    before = codescope.stage_code_version(stage)
    with open(copy / relative, "a") as handle:
        handle.write("\n# edited\n")
    codescope.stage_code_version.cache_clear()
    return before, codescope.stage_code_version(stage)


def test_editing_training_code_leaves_every_data_stage_version_unchanged(package_copy):
    data_stages = ("sample", "label", "composite", "encode")
    before = {s: codescope.stage_code_version(s) for s in data_stages}
    with open(package_copy / "train" / "loader.py", "a") as handle:
        handle.write("\n# edited\n")
    codescope.stage_code_version.cache_clear()
    assert {s: codescope.stage_code_version(s) for s in data_stages} == before


@pytest.mark.parametrize(
    ("stage", "relative"),
    [
        ("sample", "sources/coco.py"),
        ("label", "teachers/depth_pro.py"),
        ("composite", "composite/make.py"),
        ("encode", "targets/depth.py"),
        ("encode", "params/encode.py"),
        ("encode", "params/points.py"),
        ("train", "params/train.py"),
        ("train", "params/loader.py"),
        ("train", "train/loop.py"),
        ("train", "model/flow.py"),
    ],
)
def test_editing_a_module_in_scope_changes_the_stage_version(package_copy, stage, relative):
    before, after = _version_after_edit(package_copy, stage, relative)
    assert before != after


DATA_STAGES = ("sample", "label", "composite", "encode")


def test_a_new_training_knob_leaves_every_data_stage_as_it_was(package_copy):
    """Adding a field to the train section's schema changes no data unit's fingerprint and no
    DVC data stage's deps (their params are their own sections: dvc.yaml `params`)."""
    before = {s: codescope.stage_code_version(s) for s in (*DATA_STAGES, "train")}
    schema = package_copy / "params" / "train.py"
    text = schema.read_text()
    anchor = "    grad_accum: int = bounded(1, lo=1)\n"
    assert anchor in text
    schema.write_text(text.replace(anchor, anchor + "    warmup_steps: int = 0\n"))
    codescope.stage_code_version.cache_clear()
    after = {s: codescope.stage_code_version(s) for s in (*DATA_STAGES, "train")}
    assert {s: after[s] for s in DATA_STAGES} == {s: before[s] for s in DATA_STAGES}
    assert after["train"] != before["train"]
    for stage in DATA_STAGES:
        assert "src/dicepipe/params/train.py" not in DVC_STAGES[stage]["deps"]
        assert DVC_STAGES[stage]["params"] == [stage]


def test_editing_a_module_outside_a_scope_keeps_that_stage_version(package_copy):
    before, after = _version_after_edit(package_copy, "label", "targets/depth.py")
    assert before == after


def test_editing_a_data_module_keeps_the_train_version(package_copy):
    before, after = _version_after_edit(package_copy, "train", "pipeline/encode.py")
    assert before == after


def test_unknown_stage_names_the_declared_ones():
    with pytest.raises(KeyError, match="declared: " + ", ".join(sorted(STAGE_CODE))):
        stage_files("trian")


def test_the_closure_follows_relative_imports(tmp_path):
    flow = tmp_path / "stage.py"
    flow.write_text("from dicepipe.model import DiceptionModel\n")
    names = {f.relative_to(codescope.PACKAGE_DIR).as_posix() for f in import_closure([flow])}
    assert {"model/__init__.py", "model/diception.py", "model/points.py"} <= names
