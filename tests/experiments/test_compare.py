"""compare: known numbers in synthetic run folders → exact tables; gains, mismatch, refusals."""

import json
import statistics

import numpy as np
import pytest
from PIL import Image

from dsod_depth.cli import main
from dsod_depth.errors import KitError
from dsod_depth.experiments.compare import compare_runs, gains_and_mismatch
from dsod_depth.experiments.tables import render_latex, write_tables
from tests.experiments.conftest import make_run

DENSE = "densenet121_dsod"
PRETRAINED = "pretrained:/x/rgb_pre/checkpoints/last.pt"


@pytest.fixture
def runs(tmp_path):
    """Eight runs: rgb and depth × scratch / imagenet over seeds 0-1, plus one-seed cells. Values are
    chosen so that no printed number sits on a rounding tie."""
    root = tmp_path / "runs"
    make_run(root, "a", modality="rgb", init="scratch", seed=0, ap={"chair": 0.40, "table": 0.60})
    make_run(root, "b", modality="rgb", init="scratch", seed=1, ap={"chair": 0.44, "table": 0.64})
    make_run(
        root, "c", modality="rgb", init="imagenet", seed=0, ap={"chair": 0.56, "table": 0.64}, model=DENSE
    )  # noqa: E501
    make_run(
        root, "d", modality="rgb", init="imagenet", seed=1, ap={"chair": 0.58, "table": 0.66}, model=DENSE
    )  # noqa: E501
    make_run(root, "e", modality="depth", init="scratch", seed=0, ap={"chair": 0.30, "table": 0.50})
    make_run(root, "f", modality="depth", init="scratch", seed=1, ap={"chair": 0.34, "table": 0.54})
    make_run(
        root, "g", modality="depth", init="imagenet", seed=0, ap={"chair": 0.35, "table": 0.55}, model=DENSE
    )  # noqa: E501
    make_run(root, "h", modality="depth", init=PRETRAINED, seed=0, ap={"chair": 0.38, "table": None})
    return root


EXPECTED_MD = """\
# Scratch vs pretrained initialisation

8 runs in 5 groups (dataset × modality × init). Exact values: `table.json`.

![mAP per modality and init](table.png)

## synthrooms

Table 1. synthrooms: summary per modality. mAP [%] of each init on the test split (VOC07 11-point AP at \
IoU 0.5), mean ± sample standard deviation over seeds (— when n = 1), then Δ = mAP(init) − mAP(scratch) of \
each pretrained init, in points from the unrounded means; — = no such runs.

| modality | scratch | imagenet | pretrained:rgb_pre | Δ imagenet | Δ pretrained:rgb_pre |
| --- | ---: | ---: | ---: | ---: | ---: |
| rgb | 52.0 ± 2.8 | 61.0 ± 1.4 | — | +9.0 | — |
| depth | 42.0 ± 2.8 | 45.0 ± — | 38.0 ± — | +3.0 | -4.0 |

Table 2. synthrooms: mAP [%] on the test split (VOC07 11-point AP at IoU 0.5), mean ± sample standard \
deviation over seeds (n seeds; — when n = 1). Δ = mAP(init) − mAP(scratch) of the same modality, in \
points, from the unrounded means. Pretrained = every init other than scratch: imagenet = torchvision \
ImageNet-1k weights; pretrained:rgb_pre = kit checkpoint /x/rgb_pre/checkpoints/last.pt. Seeds per cell: 1 \
to 2 (column n). Training budget: 100 iterations × effective batch 16 (batch_size 8 × accumulate 2 per \
process) = 1,600 images per run.

| modality | init | model | n | mAP [%] | Δ vs scratch |
| --- | --- | --- | ---: | ---: | ---: |
| rgb | scratch | dsod_tiny | 2 | 52.0 ± 2.8 | ref. |
| rgb | imagenet | densenet121_dsod | 2 | 61.0 ± 1.4 | +9.0 |
| depth | scratch | dsod_tiny | 2 | 42.0 ± 2.8 | ref. |
| depth | imagenet | densenet121_dsod | 1 | 45.0 ± — | +3.0 |
| depth | pretrained:rgb_pre | dsod_tiny | 1 | 38.0 ± — | -4.0 |

Table 3. synthrooms: domain mismatch = Δ(rgb) − Δ(modality), in points from the unrounded means, for each \
depth-based modality and pretrained init: how much more the pretraining helps RGB than that modality \
(positive: the pretrained features transfer worse to it).

| modality | init | Δ rgb | Δ modality | Δ(rgb) − Δ(modality) |
| --- | --- | ---: | ---: | ---: |
| depth | imagenet | +9.0 | +3.0 | +6.0 |

Table 4. synthrooms: AP per class [%] (VOC07 11-point AP at IoU 0.5), mean over seeds; — = class absent \
from the test split.

| class | rgb / scratch | rgb / imagenet | depth / scratch | depth / imagenet | depth / pretrained:rgb_pre |
| --- | ---: | ---: | ---: | ---: | ---: |
| chair | 42.0 | 57.0 | 32.0 | 35.0 | 38.0 |
| table | 62.0 | 65.0 | 52.0 | 55.0 | — |
| mAP | 52.0 | 61.0 | 42.0 | 45.0 | 38.0 |
"""

EXPECTED_CSV = """\
dataset,modality,init,model,n,seeds,metric,map_pct,std_pct,map_lo_pct,map_hi_pct,delta_vs_scratch_pts,\
delta_lo_pts,delta_hi_pts,mismatch_pts,mismatch_lo_pts,mismatch_hi_pts,iters,effective_batch,images,AP chair,\
AP table
synthrooms,rgb,scratch,dsod_tiny,2,0 1,voc07,52.0,2.8,,,,,,,,,100,16,1600,42.0,62.0
synthrooms,rgb,imagenet,densenet121_dsod,2,0 1,voc07,61.0,1.4,,,9.0,,,,,,100,16,1600,57.0,65.0
synthrooms,depth,scratch,dsod_tiny,2,0 1,voc07,42.0,2.8,,,,,,,,,100,16,1600,32.0,52.0
synthrooms,depth,imagenet,densenet121_dsod,1,0,voc07,45.0,,,,3.0,,,6.0,,,100,16,1600,35.0,55.0
synthrooms,depth,pretrained:rgb_pre,dsod_tiny,1,0,voc07,38.0,,,,-4.0,,,,,,100,16,1600,38.0,
"""


def test_known_numbers_give_the_exact_markdown_and_csv(runs, tmp_path):
    # The order of the arguments does not matter; a folder of runs expands to its runs. Without the
    # bootstrap the cells are plain (these runs have metrics only; intervals: test_compare_intervals.py).
    result = compare_runs([runs / "h", runs / "a", runs], bootstrap=0)
    assert len(result["runs"]) == 8
    paths = write_tables(result, tmp_path / "out" / "table.md")
    assert paths["md"].read_text(encoding="utf-8") == EXPECTED_MD
    assert paths["csv"].read_text(encoding="utf-8") == EXPECTED_CSV
    names = sorted(p.name for p in paths.values())
    assert names == [f"table.{kind}" for kind in ("csv", "json", "md", "png", "tex")]


def test_latex_has_every_table_with_escaped_text(runs):
    tex = render_latex(compare_runs([runs], bootstrap=0))
    assert tex.count("\\begin{table}") == tex.count("\\end{table}") == 4
    assert tex.count("\\begin{tabular}") == tex.count("\\toprule") == tex.count("\\bottomrule") == 4
    assert "rgb & imagenet & densenet121\\_dsod & 2 & 61.0 $\\pm$ 1.4 & +9.0 \\\\" in tex
    assert "depth & imagenet & densenet121\\_dsod & 1 & 45.0 $\\pm$ --- & +3.0 \\\\" in tex
    assert "depth & imagenet & +9.0 & +3.0 & +6.0 \\\\" in tex
    assert "table & 62.0 & 65.0 & 52.0 & 55.0 & --- \\\\" in tex
    body = tex.replace("\\%", "").replace("\\_", "")
    assert "%" not in body.split("\n", 1)[1] and "_" not in body and "±" not in tex and "Δ" not in tex


def test_json_holds_the_exact_fractions(runs, tmp_path):
    paths = write_tables(compare_runs([runs]), tmp_path / "t.md", chart=False)
    assert "png" not in paths and not (tmp_path / "t.png").exists()
    data = json.loads(paths["json"].read_text())
    group = {(g["modality"], g["init"]): g for g in data["groups"]}
    rgb_scratch = group[("rgb", "scratch")]
    assert rgb_scratch["seeds"] == [0, 1] and rgb_scratch["map_values"] == [0.5, 0.54]
    assert rgb_scratch["map_mean"] == statistics.fmean([0.5, 0.54])
    assert rgb_scratch["map_std"] == statistics.stdev([0.5, 0.54])
    assert group[("depth", "imagenet")]["map_std"] is None
    assert group[("depth", "pretrained:rgb_pre")]["ap_per_class"]["table"] == {
        "mean": None,
        "std": None,
        "values": [None],
    }
    (gain,) = [d for d in data["gains"] if (d["modality"], d["init"]) == ("depth", "imagenet")]
    assert gain["scratch_map"] == pytest.approx(0.42) and gain["init_map"] == pytest.approx(0.45)
    assert gain["delta"] == gain["init_map"] - gain["scratch_map"] == pytest.approx(0.03, abs=1e-12)
    (mismatch,) = data["mismatch"]
    assert mismatch["mismatch"] == pytest.approx(0.06, abs=1e-12)
    assert {r["dataset_source"] for r in data["runs"]} == {"store folder"}


def test_gain_and_mismatch_against_a_direct_computation():
    rng = np.random.default_rng(0)
    modalities, inits = ["rgb", "depth", "hha", "rgb+hha"], ["scratch", "imagenet", "pretrained:x"]
    cells = [(d, m, i) for d in ("a", "b") for m in modalities for i in inits if rng.random() > 0.2]
    groups = [{"dataset": d, "modality": m, "init": i, "map_mean": float(rng.random())} for d, m, i in cells]
    gains, mismatch = gains_and_mismatch(groups)
    mean = {(g["dataset"], g["modality"], g["init"]): g["map_mean"] for g in groups}
    expected_gains = {
        (d, m, i): mean[(d, m, i)] - mean[(d, m, "scratch")]
        for d, m, i in mean if i != "scratch" and (d, m, "scratch") in mean
    }  # fmt: skip
    assert {(g["dataset"], g["modality"], g["init"]): g["delta"] for g in gains} == expected_gains
    expected_mismatch = {
        (d, m, i): expected_gains[(d, "rgb", i)] - delta
        for (d, m, i), delta in expected_gains.items() if m != "rgb" and (d, "rgb", i) in expected_gains
    }  # fmt: skip
    assert {(x["dataset"], x["modality"], x["init"]): x["mismatch"] for x in mismatch} == expected_mismatch
    assert expected_mismatch  # the draw leaves some complete cells


def test_missing_metrics_is_one_clear_error(runs, tmp_path, capsys):
    (runs / "c" / "eval" / "test" / "metrics.json").unlink()
    with pytest.raises(KitError) as info:
        compare_runs([runs])
    message = str(info.value)
    assert "\n" not in message and "dsod-depth eval" in message
    assert f"{runs / 'c' / 'eval' / 'test' / 'metrics.json'} not found" in message
    out = tmp_path / "cmp" / "t.md"
    assert main(["compare", str(runs), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "metrics.json not found" in err
    assert not out.parent.exists()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"seed": 0}, "are the same experiment"),
        ({"iters": 200}, "differ in setup .*iters 100 vs 200"),
        ({"metric": "coco"}, "scored differently"),
    ],
)
def test_runs_that_cannot_be_averaged_are_refused(runs, change, match):
    args = {"modality": "rgb", "init": "scratch", "seed": 5, "ap": {"chair": 0.5, "table": 0.5}, **change}
    make_run(runs, "extra", **args)
    with pytest.raises(KitError, match=match):
        compare_runs([runs])


def test_not_a_run_and_bad_metrics_files(tmp_path, runs):
    with pytest.raises(KitError, match="not found"):
        compare_runs([tmp_path / "nothing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(KitError, match="holds no run folder"):
        compare_runs([tmp_path / "empty"])
    (runs / "a" / "eval" / "test" / "metrics.json").write_text('{"map": 0.5}')
    with pytest.raises(KitError, match="not a metrics file"):
        compare_runs([runs / "a"])
    with pytest.raises(KitError, match=r"ending in \.md"):
        write_tables(compare_runs([runs / "b"]), tmp_path / "table.txt")


def test_chart_and_cli(runs, tmp_path, capsys):
    out = tmp_path / "cmp" / "table.md"
    assert main(["compare", str(runs), "--out", str(out), "--bootstrap", "0"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(EXPECTED_MD) and "tables written:" in printed
    with Image.open(out.with_suffix(".png")) as image:
        assert image.format == "PNG" and image.width >= 500 and image.height >= 500
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)  # [H·W, 3]
        assert len(np.unique(pixels, axis=0)) > 10  # drawn, not blank


def test_two_datasets_get_their_own_sections_and_shared_csv_columns(runs, tmp_path):
    ap = {"bed": 0.2, "sofa": 0.4}
    make_run(runs, "n0", modality="hha", init="scratch", seed=0, ap=ap, store="/s/nyudv2")
    result = compare_runs([runs])
    assert [d["name"] for d in result["datasets"]] == ["nyudv2", "synthrooms"]
    paths = write_tables(result, tmp_path / "two.md", chart=False)
    md = paths["md"].read_text()
    assert md.index("## nyudv2") < md.index("## synthrooms")
    # Numbering runs on: nyudv2 has tables 1-4 (its mismatch table says why it is empty), synthrooms 5-8.
    assert "Table 3. nyudv2: domain mismatch" in md and "No figure for nyudv2" in md
    assert "Table 6. synthrooms: mAP [%]" in md
    assert md.index("| hha | scratch | dsod_tiny | 1 | 30.0 ± — | ref. |") < md.index("## synthrooms")
    header, first, *_ = paths["csv"].read_text().splitlines()
    assert header.endswith("AP bed,AP sofa,AP chair,AP table")
    assert first == "nyudv2,hha,scratch,dsod_tiny,1,0,voc07,30.0,,,,,,,,,,100,16,1600,20.0,40.0,,"


def _synthrooms_store(folder, prep_args):
    """A store folder whose test split carries only the attributes compare reads."""
    import h5py

    folder.mkdir(parents=True)
    with h5py.File(folder / "test.h5", "w") as f:
        f.attrs["dataset"] = "synthrooms"
        f.attrs["prep_args"] = json.dumps(prep_args)
    return str(folder)


def test_synthrooms_appearance_is_stated_and_different_appearances_are_not_mixed(tmp_path):
    default = _synthrooms_store(
        tmp_path / "a", {"appearance_randomness": 0.1, "appearance_model": "materials"}
    )
    free = _synthrooms_store(tmp_path / "b", {"appearance_randomness": 1.0, "appearance_model": "materials"})
    legacy = _synthrooms_store(tmp_path / "c", {"appearance_randomness": 0.75})  # before the record
    ap = {"chair": 0.5, "table": 0.3}
    runs = tmp_path / "runs"
    make_run(runs, "a", modality="rgb", init="scratch", seed=0, ap=ap, store=default)
    result = compare_runs([runs])
    assert result["datasets"][0]["variant"] == "appearance materials, randomness 0.1"
    write_tables(result, tmp_path / "one.md")
    assert "Frames: appearance materials, randomness 0.1." in (tmp_path / "one.md").read_text()

    make_run(runs, "b", modality="rgb", init="scratch", seed=0, ap=ap, store=free)
    make_run(runs, "c", modality="rgb", init="scratch", seed=0, ap=ap, store=legacy)
    names = sorted(d["name"] for d in compare_runs([runs])["datasets"])
    assert names == [
        "synthrooms (appearance hue-blend, randomness 0.75)",
        "synthrooms (appearance materials, randomness 0.1)",
        "synthrooms (appearance materials, randomness 1)",
    ]


def test_the_training_budget_counts_the_processes_of_a_ddp_run(runs):
    # `sweep --gpus-per-run 4` divides optim.accumulate by 4: the effective batch is 4 times the config's.
    for name in ("a", "b"):
        log = runs / name / "metrics.jsonl"
        log.write_text(json.dumps({"step": 100, "loss": 1.0, "processes": 4}) + "\n")
    result = compare_runs([runs], bootstrap=0)
    rgb = next(g for g in result["groups"] if (g["modality"], g["init"]) == ("rgb", "scratch"))
    assert (rgb["processes"], rgb["effective_batch"]) == (4, 64)
    md = write_tables(result, runs.parent / "t.md", chart=False)["md"].read_text()
    assert (
        "100 iterations × effective batch 64 (batch_size 8 × accumulate 2 per process × 4 processes) = "
        "6,400 images per run (rgb/scratch)" in md
    )
    (runs / "c" / "metrics.jsonl").write_text("{not json\n")  # a damaged log: one process assumed
    assert (
        next(r for r in compare_runs([runs], bootstrap=0)["runs"] if r["run_dir"].endswith("c"))["processes"]
        == 1
    )
