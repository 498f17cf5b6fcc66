"""Generation from the SDK: a wedge of prompts x seeds on the shipped shapes_t2v model,
run by a real server and local worker, and its refusals."""
import json
import pathlib
import subprocess

import pytest

import reelfarm
from conftest import Farm

MODELS = pathlib.Path(__file__).resolve().parents[3] / "models"
PROMPTS = ["red circle moving right", "blue square moving up"]


@pytest.fixture(scope="module")
def gen_farm(tmp_path_factory):
    # The shipped package alone: models/ also holds what scripts/fetch-models.sh
    # imports, which the worker would otherwise load and warm first.
    models = tmp_path_factory.mktemp("models")
    (models / "shapes_t2v").symlink_to(MODELS / "shapes_t2v")
    f = Farm(tmp_path_factory.mktemp("gen"), local_workers=1,
             extra=("--model-path", str(models)))
    yield f
    f.stop()


def png_size(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=width,height",
                          "-of", "json", str(path)], check=True, capture_output=True, text=True)
    s = json.loads(out.stdout)["streams"][0]
    return s["width"], s["height"]


def test_a_wedge_of_prompts_and_seeds_is_one_take_each(gen_farm):
    client = reelfarm.Client(gen_farm.address, insecure=True)
    job = client.submit_generate("shapes_t2v", PROMPTS, "gen/sh010.####.png", seeds=[7, 8],
                                 steps=4, width=64, height=64, frames=4, name="sh010")
    assert job.tasks_total == 4
    final = job.wait(timeout=300, raise_on_failure=True)
    assert final.succeeded
    takes = []
    for i in range(4):
        stem = f"sh010_take{i + 1:03d}"
        frames = sorted((gen_farm.storage / "gen").glob(stem + ".*.png"))
        assert [f.name for f in frames] == [f"{stem}.{n:04d}.png" for n in range(4)]
        assert png_size(frames[0]) == (64, 64)
        side = json.loads((gen_farm.storage / "gen" / (stem + ".####.png.json")).read_text())
        take = side["take"]
        takes.append((take["prompt"], take["seed"]))
        assert take["steps"] == 4
        assert sorted(take["varying"]) == ["prompt", "seed"]
    # Prompts outermost, seeds innermost.
    assert takes == [(PROMPTS[0], 7), (PROMPTS[0], 8), (PROMPTS[1], 7), (PROMPTS[1], 8)]


def test_generate_refusals_are_typed_and_name_the_field(gen_farm):
    client = reelfarm.Client(gen_farm.address, insecure=True)
    with pytest.raises(reelfarm.InvalidSpec) as err:
        client.submit_generate("shapes_t2v", PROMPTS[0], "gen/x.####.png",
                               sampler=["euler", "heun"], width=64, height=64, frames=4)
    assert "generate.sampler" in err.value.message and "'heun'" in err.value.message
    with pytest.raises(reelfarm.InvalidSpec) as err:
        client.submit_generate("shapes_t2v", PROMPTS[0], "gen/x.####.png", width=63,
                               height=64, frames=4)
    assert "generate.width" in err.value.message
    with pytest.raises(reelfarm.NotFound) as err:
        client.submit_generate("no_such_model", PROMPTS[0], "gen/x.####.png")
    assert "no_such_model" in err.value.message


def test_sidecar_of_each_take(gen_farm):
    client = reelfarm.Client(gen_farm.address, insecure=True)
    job = client.submit_generate("shapes_t2v", PROMPTS[1], "gen/{take}/frame.####.png",
                                 seeds=[11, 12], steps=2, width=64, height=64, frames=2,
                                 name="sc020")
    final = job.wait(timeout=300, raise_on_failure=True)
    for take, seed in ((1, 11), (2, 12)):
        side = final.sidecar(storage_root=gen_farm.storage, take=take)
        path = gen_farm.storage / f"gen/sc020_take{take:03d}/frame.####.png.json"
        assert side == json.loads(path.read_text())
        assert (side["take"]["seed"], side["take"]["prompt"]) == (seed, PROMPTS[1])
    with pytest.raises(ValueError, match="has 2 takes; give take=1..2"):
        final.sidecar(storage_root=gen_farm.storage)
    # One take: no take= needed; the stem is replaced when there is no {take}.
    one = client.submit_generate("shapes_t2v", PROMPTS[0], "gen/one.####.png", seeds=[5],
                                 steps=2, width=64, height=64, frames=2)  # default name
    side = one.wait(timeout=300, raise_on_failure=True).sidecar(storage_root=gen_farm.storage)
    assert side == json.loads((gen_farm.storage / "gen/one_take001.####.png.json").read_text())
