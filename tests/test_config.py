import pytest

from dsod_depth.config import ExperimentConfig, dump_config, from_dict, load_config, to_dict
from dsod_depth.errors import KitError


def write(tmp_path, text):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_defaults_round_trip_through_yaml(tmp_path):
    cfg = ExperimentConfig()
    path = write(tmp_path, dump_config(cfg))
    assert load_config(path) == cfg
    assert from_dict(to_dict(cfg)) == cfg


def test_values_and_overrides(tmp_path):
    path = write(
        tmp_path,
        "name: x\ndata: {modality: rgb_hha, input_size: 160}\n"
        "optim: {lr: 1, milestones: [10, 20]}\nmodel: {options: {memory_efficient: true}}\n",
    )
    cfg = load_config(path, ["train.iters=50", "optim.lr=0.05", "model.options.growth=16"])
    assert cfg.data.modality == "rgb_hha" and cfg.data.input_size == 160
    assert cfg.optim.lr == 0.05 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.milestones == (10, 20)
    assert cfg.train.iters == 50
    assert cfg.model.options == {"memory_efficient": True, "growth": 16}


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("data: {modalty: rgb}\n", [], r"unknown key 'data\.modalty'"),
        ("trian: {}\n", [], r"unknown key 'trian'"),
        ("train: {iters: ten}\n", [], r"train\.iters must be an integer"),
        ("train: {iters: 1.5}\n", [], r"train\.iters must be an integer"),
        ("data: {augment: 1}\n", [], r"data\.augment must be true or false"),
        ("optim: {milestones: 5}\n", [], r"optim\.milestones must be a list"),
        ("train: {amp: fp8}\n", [], r"train\.amp must be one of off, bf16, fp16"),
        ("data: [1, 2]\n", [], r"data must be a mapping"),
        ("- 1\n- 2\n", [], r"top level must be a mapping"),
        ("data:\n  modality: rgb\n bad: [\n", [], r"line 3 is not valid YAML"),
        ("{}\n", ["train.iters"], r"expected key=value"),
        ("{}\n", ["train.nope=1"], r"unknown key 'train\.nope'"),
        ("name: foo\n", ["name.x=1"], r"'name' is not a section"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, text, overrides, message):
    path = write(tmp_path, text)
    with pytest.raises(KitError, match=message) as err:
        load_config(path, overrides)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(KitError, match="not found"):
        load_config(tmp_path / "nope.yaml")
