"""An evaluation run of a tiny random model: metrics structure, per-sample CSV, plots,
previews, benchmarks from params, the DVC stage entry point."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace

import numpy as np
import pytest

from dicepipe.config import load_params
from dicepipe.evaluate.report import write_report
from dicepipe.evaluate.run import evaluate_model
from dicepipe.imageio import decode_image
from dicepipe.params.evaluate import BenchmarkParams, EvalSamplingParams, EvaluateParams
from dicepipe.shards.preview import HEADER_PX
from stages.evaluate import main as stage_main
from tests.evaluate.fixtures import gradient_rgb, png_bytes, write_archive, write_split
from tests.evaluate.tiny import EVAL_TASKS, fast_params, save_model, write_params
from tests.model.bad_folders import BAD_FOLDERS, break_folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    save_model(root / "model")
    params = fast_params(root)
    evaluation = evaluate_model(root / "model", params, progress=False)
    written = write_report(evaluation, params.metrics, params.out)
    return root, params, evaluation, written


def test_metrics_json_nests_benchmark_task_model_and_baseline(run):
    root, params, evaluation, _ = run
    metrics = json.loads((root / "metrics" / "eval.json").read_text())
    assert metrics == evaluation.metrics and set(metrics) == {"heldout"}
    assert set(metrics["heldout"]) == set(EVAL_TASKS)
    for task, systems in metrics["heldout"].items():
        assert set(systems) == {"model", "baseline"}, task
        assert set(systems["model"]) - {"empty_predictions"} == set(systems["baseline"]), task
        assert 0.0 <= systems["model"]["empty_predictions"] <= 1.0, task
    depth = metrics["heldout"]["depth"]["model"]
    assert {"absrel", "delta1", "delta2", "delta3", "rmse"} <= set(depth)
    assert depth["n_images"] == 3 and 0 <= depth["delta1"] <= 1
    normal = metrics["heldout"]["normal"]["model"]
    assert {"pooled_mean", "per_image_mean", "pooled_pct_11_25", "n_pixels"} <= set(normal)
    point = metrics["heldout"]["point_segmentation"]["model"]
    assert point["count_1pt"] == point["count_5pt"] == 9  # 3 images x 3 prompted masks
    assert {"AP", "AR_100", "AR_small"} <= set(metrics["heldout"]["entity_segmentation"]["model"])
    assert "AP" in metrics["heldout"]["pose"]["model"]


def test_per_sample_csv_has_a_row_per_query_and_system(run):
    root, _, evaluation, _ = run
    with open(root / "metrics" / "eval" / "samples.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(evaluation.rows) == 2 * (3 + 3 + 9 * 2 + 3 + 3)
    assert list(rows[0])[:5] == ["benchmark", "task", "sample", "item", "system"]
    depth = [r for r in rows if r["task"] == "depth" and r["system"] == "model"]
    assert len(depth) == 3 and all(float(r["absrel"]) >= 0 for r in depth)
    items = [r["item"] for r in rows if r["task"] == "point_segmentation"]
    assert all(re.fullmatch(r"mask\d+/[15]pt", item) for item in items)


def test_plots_and_previews_are_pngs(run):
    root, _, _, written = run
    out = root / "metrics" / "eval"
    with open(out / "headline.csv") as handle:
        bars = list(csv.DictReader(handle))
    assert {b["system"] for b in bars} == {"model", "baseline"}
    assert any(b["bar"].startswith("heldout/depth/absrel ↓") for b in bars)
    assert decode_image((out / "bars.png").read_bytes()).rgb.shape[1] > 500
    for task in EVAL_TASKS:
        preview = decode_image((out / f"preview-{task}.png").read_bytes()).rgb
        assert preview.shape == (HEADER_PX + 2 * 128 + 4, 3 * 128 + 2 * 4, 3)  # titles, 2 rows
    info = json.loads((out / "run.json").read_text())
    assert info["resolution"] == 16 and info["sampling"]["steps"] == 2
    assert info["sampling_warnings"] == []  # the folder has no training record to check
    assert out / "bars.png" in written


def test_sampling_against_the_training_is_reported(tmp_path, capsys):
    from dicepipe.model.folder import INFERENCE_FILE

    save_model(tmp_path / "model", tasks=("depth",))
    record = {"resolution": 16, "flow": {"deterministic": True, "prompt_dropout": 0.0}}
    (tmp_path / "model" / INFERENCE_FILE).write_text(json.dumps(record))
    params = fast_params(tmp_path, tasks=("depth",))  # 2 Euler steps, not the one it learnt
    evaluation = evaluate_model(tmp_path / "model", params, progress=False)
    write_report(evaluation, params.metrics, params.out)
    warnings = json.loads((tmp_path / "metrics" / "eval" / "run.json").read_text())["warnings"]
    sampling = [line for line in warnings if line.startswith("warning: evaluate.sampling: ")]
    assert [line.split(": ", 2)[2].split(" (")[0] for line in sampling] == [
        "many-step sampling of a model trained in the one-step mode",
        "guidance 2 mixes in an unconditional prediction that this model never learnt",
    ]
    err = capsys.readouterr().err
    assert all(line in err for line in sampling)


def test_a_task_the_checkpoint_lacks_is_skipped_and_said_so(tmp_path):
    save_model(tmp_path / "model", tasks=("depth", "normal"))
    params = fast_params(tmp_path, tasks=("depth", "pose"))
    evaluation = evaluate_model(tmp_path / "model", params, progress=False)
    assert set(evaluation.metrics["heldout"]) == {"depth"}
    assert "does not know" in evaluation.skipped["heldout"]["pose"]


def test_same_seed_same_figures_and_ensembles_run(tmp_path):
    save_model(tmp_path / "model")
    params = fast_params(tmp_path, tasks=("depth", "normal"), benchmarks=(BenchmarkParams(),))
    first = evaluate_model(tmp_path / "model", params, progress=False).metrics
    assert evaluate_model(tmp_path / "model", params, progress=False).metrics == first
    ensemble = replace(params, sampling=EvalSamplingParams(steps=2, ensemble=3))
    figures = evaluate_model(tmp_path / "model", ensemble, progress=False).metrics
    assert figures["heldout"]["depth"]["model"] != first["heldout"]["depth"]["model"]
    one_step = replace(params, sampling=EvalSamplingParams(one_step=True, reduce="mean"))
    assert evaluate_model(tmp_path / "model", one_step, progress=False).metrics["heldout"]


def test_a_public_benchmark_is_read_from_its_archive_and_split(tmp_path):
    members, lines = {}, []
    for i in (1, 2):
        depth = np.full((480, 640), 1000 * i, np.uint16)
        depth[:, 320:] = 3000
        members[f"test/room/rgb_000{i}.png"] = png_bytes(gradient_rgb(480, 640, i))
        members[f"test/room/depth_000{i}.png"] = png_bytes(depth)
        lines.append(f"test/room/rgb_000{i}.png test/room/depth_000{i}.png")
    tar = write_archive(tmp_path / "nyu_labeled_extracted", members, "tar")
    split = write_split(tmp_path / "filename_list_test.txt", lines)
    save_model(tmp_path / "model")
    bench = BenchmarkParams(name="nyuv2", path=str(tar), split=str(split))
    params = fast_params(tmp_path, benchmarks=(BenchmarkParams(limit=1), bench))
    evaluation = evaluate_model(tmp_path / "model", params, progress=False)
    assert set(evaluation.metrics) == {"heldout", "nyuv2"}
    assert set(evaluation.metrics["nyuv2"]) == {"depth"}  # NYUv2 has depth labels only
    assert evaluation.metrics["nyuv2"]["depth"]["model"]["n_images"] == 2
    assert evaluation.skipped["nyuv2"]["pose"] == "no sample of this benchmark has its labels"


def test_the_stage_entry_point_writes_the_dvc_outputs(tmp_path, capsys):
    save_model(tmp_path / "model")
    params = fast_params(tmp_path, tasks=("depth", "point_segmentation"))
    path = write_params(tmp_path / "params.yaml", params)
    assert load_params(EvaluateParams, path) == params
    assert stage_main(["--params", str(path)]) == 0
    assert json.loads((tmp_path / "metrics" / "eval.json").read_text())["heldout"]["depth"]
    assert (tmp_path / "metrics" / "eval" / "preview-point_segmentation.png").is_file()
    bad = tmp_path / "bad.yaml"
    bad.write_text("evaluate:\n  sampling: {stepz: 3}\n")
    assert stage_main(["--params", str(bad)]) == 2
    assert "evaluate.sampling: unknown key 'stepz'" in capsys.readouterr().err


@pytest.mark.gpu
def test_bf16_autocast_on_cuda_gives_finite_figures(tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    save_model(tmp_path / "model")
    params = fast_params(tmp_path, device="cuda", tasks=("depth", "normal", "point_segmentation"))
    evaluation = evaluate_model(tmp_path / "model", params, progress=False)
    assert evaluation.info["device"].startswith("cuda")
    for figures in evaluation.metrics["heldout"].values():
        assert all(np.isfinite(v) for v in figures["model"].values())


def test_models_load_side_by_side_without_leaving_meta_tensors(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from dicepipe.evaluate.predict import load_model
    from tests.model.conftest import make_model

    folders = [save_model(tmp_path / f"m{i}", seed=i) for i in range(3)]
    with ThreadPoolExecutor(3) as pool:
        loaded = list(pool.map(lambda f: load_model(f, "cpu", None), folders * 2))
    assert all(not p.is_meta for one in loaded for p in one.model.parameters())
    assert all(not p.is_meta for p in make_model().parameters())
    assert {one.resolution for one in loaded} == {16}


@pytest.mark.parametrize("kind", sorted(BAD_FOLDERS))
def test_every_kind_of_broken_model_folder_exits_2_naming_file_and_fault(tmp_path, capsys, kind):
    good = save_model(tmp_path / "good")
    named, message = break_folder(good, tmp_path / "model", kind)
    path = write_params(tmp_path / "params.yaml", fast_params(tmp_path))
    assert stage_main(["--params", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and named in err and message in err, err
    assert not (tmp_path / "metrics").exists()


def test_an_evaluation_resolution_off_the_grid_is_refused(tmp_path, capsys):
    save_model(tmp_path / "model")
    path = write_params(tmp_path / "params.yaml", fast_params(tmp_path, resolution=17))
    assert stage_main(["--params", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == "error: evaluate.resolution: resolution 17 is not a multiple of 2 (patch x VAE)\n"


def test_the_report_writes_to_an_object_store_what_it_writes_to_a_folder(run):
    from dicepipe.storage import listing, location
    from tests.objectstore import s3_server

    root, params, evaluation, written = run
    with s3_server() as store:
        url = f"{store.url}/eval"
        remote = write_report(evaluation, f"{url}/eval.json", f"{url}/report")
        assert [p.name for p in remote] == [p.name for p in written]
        for local, there in zip(written, remote, strict=True):
            assert location(there).read_bytes() == local.read_bytes(), local.name
        assert {p.name for p in listing(location(f"{url}/report"), "*")} == {
            p.name for p in written[1:]
        }
