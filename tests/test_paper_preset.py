"""The paper preset (`params.paper.yaml`): it validates, says Table S1, and plans a mirror."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dicepipe.config import load_params
from dicepipe.params import SECTIONS, schema
from dicepipe.params.composite import CompositeStageParams
from dicepipe.params.encode import EncodeParams
from dicepipe.params.sample import SampleParams
from dicepipe.pipeline import composite, sample
from dicepipe.sources.synthetic.corpus import write_sample_corpus
from dicepipe.sources.synthetic.matting import write_matting_corpus

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "params.paper.yaml"


def test_every_section_validates():
    for section in SECTIONS:
        load_params(schema(section), PRESET)


def test_the_counts_and_roles_are_those_of_table_s1():
    params = load_params(SampleParams, PRESET)
    assert (params.openimages.n, params.sa1b.n, params.sa1b.entity) == (500_000, 400_000, False)
    roles = {d.name: (d.n, d.tasks) for d in params.coco}
    assert roles == {
        "coco": (42_000, ("pose",)),
        "coco_rem": (120_000, ("semantic_segmentation",)),
        "entityv2": (32_000, ("entity_segmentation",)),
    }
    assert load_params(CompositeStageParams, PRESET).count == 200_000
    assert load_params(EncodeParams, PRESET).shard_bytes == 512 * 2**20
    assert load_params(schema("label"), PRESET).runner.kind == "dask-cuda"
    assert vars(load_params(schema("loader"), PRESET).weights) == {
        "depth": 15.0,
        "normal": 15.0,
        "point_segmentation": 20.0,
        "entity_segmentation": 20.0,
        "semantic_segmentation": 20.0,
        "pose": 20.0,
    }


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    """A small copy of every dataset, files named and placed as the preset expects them."""
    root = tmp_path_factory.mktemp("mirror")
    corpus = root / "corpus"
    write_sample_corpus(corpus, n_openimages=5, n_sa1b=4, images_per_tar=2, n_coco=3,
                        width=32, height=24, n_coco_rem=4, n_entityv2=3)  # fmt: skip
    write_matting_corpus(corpus / "matting", seed=0)
    paper = root / "data" / "paper"
    moves = {
        "openimages/image_ids.csv": "openimages/oidv6-train-images-with-labels-with-rotation.csv",
        "openimages/images": "openimages/train",
        "sa1b": "sa1b",
        "coco/annotations/person_keypoints.json": "coco/annotations/"
        "person_keypoints_train2017.json",
        "coco/images": "coco/train2017",
        "coco_rem/annotations/instances_trainrem.json": "coco_rem/instances_trainrem.json",
        "entityv2/annotations/entityseg_train_lr.json": "entityseg/entityseg_train_lr.json",
        "entityv2/images": "entityseg/images",
        "matting/p3m10k": "matting/P3M-10k",
        "matting/am2k": "matting/AM-2k",
        "matting/aim500": "matting/AIM-500",
    }
    for source, target in moves.items():
        (paper / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(corpus / source, paper / target)
    # COCO-ReM annotates COCO's own train2017 images
    for image in (corpus / "coco_rem" / "train2017").iterdir():
        shutil.move(image, paper / "coco" / "train2017" / f"rem-{image.name}")
    return root


def test_the_preset_plans_every_source_on_a_mirror(mirror, monkeypatch):
    monkeypatch.chdir(mirror)
    units = sample.plan(load_params(SampleParams, PRESET))
    items = {}
    for unit in units:
        items.setdefault(unit.source, []).extend(item for item, _ in unit.items)
        assert (
            unit.tasks
            == {
                "openimages": (),
                "sa1b": ("point_segmentation",),
                "coco": ("pose",),
                "coco_rem": ("semantic_segmentation",),
                "entityv2": ("entity_segmentation",),
            }[unit.source]
        )
    counts = {source: len(ids) for source, ids in items.items()}
    # n is far above what the mirror holds: every candidate is taken; COCO keypoints only
    # where a person is labelled (1 or 2 figures per image: all 3 images)
    assert counts == {"openimages": 5, "sa1b": 4, "coco": 3, "coco_rem": 4, "entityv2": 3}
    foregrounds = composite.foreground_refs(load_params(CompositeStageParams, PRESET))
    roots = {Path(root).name for root, _ in foregrounds}
    assert roots == {"P3M-10k", "AM-2k", "AIM-500"} and len(foregrounds) >= 9
    assert composite.plan(load_params(CompositeStageParams, PRESET))[-1][1] == 200_000
