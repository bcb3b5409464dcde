"""Security rules of the house, checked on the source: nothing unpickles outside data, YAML is
only safe-loaded, no shell string is built, numpy never loads pickles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted(
    path
    for folder in ("src", "flows", "stages")
    for path in (REPO / folder).rglob("*.py")
    if "__pycache__" not in path.parts
)


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def _keyword(node: ast.Call, name: str):
    for keyword in node.keywords:
        if keyword.arg == name:
            return ast.unparse(keyword.value)
    return None


def _offences(rule) -> list[str]:
    found = []
    for path in SOURCES:
        for node, func in _calls(path):
            problem = rule(node, func)
            if problem:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {problem}")
    return found


def test_the_scan_sees_the_package():
    assert any(p.name == "codescope.py" for p in SOURCES) and len(SOURCES) > 100


def test_no_pickle_and_torch_load_only_with_weights_only():
    def rule(node: ast.Call, func: str) -> str | None:
        if func.startswith(("pickle.", "cPickle.", "dill.", "joblib.load")):
            return f"{func}: unpickling"
        if func.endswith("torch.load") and _keyword(node, "weights_only") != "True":
            return "torch.load without weights_only=True"
        return None

    assert _offences(rule) == []


def test_yaml_is_only_safe_loaded():
    def rule(node: ast.Call, func: str) -> str | None:
        if func in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all"):
            return f"{func}: use yaml.safe_load"
        return None

    assert _offences(rule) == []


def test_no_shell_strings():
    def rule(node: ast.Call, func: str) -> str | None:
        if func in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"):
            return f"{func}: runs a shell string"
        if func.startswith("subprocess.") and _keyword(node, "shell") == "True":
            return f"{func} with shell=True"
        return None

    assert _offences(rule) == []


def test_numpy_never_loads_pickles():
    def rule(node: ast.Call, func: str) -> str | None:
        if func in ("np.load", "numpy.load") and _keyword(node, "allow_pickle") != "False":
            return "np.load without allow_pickle=False"
        return None

    assert _offences(rule) == []


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("import pickle\npickle.loads(b'')\n", "unpickling"),
        ("import torch\ntorch.load('x')\n", "weights_only"),
        ("import yaml\nyaml.load('')\n", "safe_load"),
        ("import subprocess\nsubprocess.run('ls', shell=True)\n", "shell=True"),
    ],
)
def test_each_rule_catches_its_offence(tmp_path, monkeypatch, source, message):
    bad = tmp_path / "bad.py"
    bad.write_text(source)
    offences = []
    for rule_test in (
        test_no_pickle_and_torch_load_only_with_weights_only,
        test_yaml_is_only_safe_loaded,
        test_no_shell_strings,
    ):
        monkeypatch.setattr(f"{__name__}.SOURCES", [bad])
        monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
        try:
            rule_test()
        except AssertionError as error:
            offences.append(str(error))
    assert any(message in text for text in offences)
