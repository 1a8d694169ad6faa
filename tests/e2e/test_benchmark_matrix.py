"""A benchmark matrix's row trains once, in a process of its own (the resumable runner `hkd cv`
uses too), and a later invocation finds the finished run instead of training again."""

import json
import shutil

from omegaconf import OmegaConf

from benchmarks import matrix


def test_a_matrix_row_trains_once_and_is_found_again(tmp_path, capsys):
    tiny = ["trainer.max_epochs=1", "data.synthetic.n_train=40", "data.synthetic.n_val=20",
            "data.synthetic.n_test=20", "data.synthetic.size=48", "data.image_size=32",
            f"data.cache_dir={tmp_path / 'cache'}"]
    out = tmp_path / "runs" / "demo"
    out.mkdir(parents=True)
    run_dir = matrix.run("base line", matrix.Row("quickstart", tiny), 0, out)
    assert run_dir == out / "base_line" / "seed0"
    assert json.loads((run_dir / "summary.json").read_text())["name"] == "base line"
    printed = capsys.readouterr().out
    assert f"[base line seed0] training {run_dir}" in printed and "base line seed0: test acc" in printed
    record = matrix.record_of("demo", "base line", "quickstart", tiny, run_dir, is_ceiling=True)
    assert record["ceiling"] is True and record["seed"] == 0 and record["config_sha256"]
    assert matrix.run("base line", matrix.Row("quickstart", tiny), 0, out) == run_dir
    assert "training" not in capsys.readouterr().out  # found, not trained again

    # a key added since counts at its default, unless its default changed what the code did before it
    config_file = run_dir / "config.yaml"
    saved = OmegaConf.load(config_file)
    for key, default_then in (("propagate_scale", "default"), ("propagate_features", "behaviour before")):
        config = saved.copy()
        del config.imil[key]
        OmegaConf.save(config, config_file)
        assert matrix.same_run(run_dir, "quickstart", tiny) == (default_then == "default")
    old_widths = [*tiny, "imil.propagate_features=[8,16,32,64,128,8]"]
    assert matrix.same_run(run_dir, "quickstart", old_widths)  # what a run from before the key did
    OmegaConf.save(saved, config_file)

    # its record stands for it when the run directory is gone (a fresh clone, a wiped /tmp)
    records_file = tmp_path / "demo.jsonl"
    matrix.add_record(records_file, record)
    shutil.rmtree(run_dir)
    row = ("base line", "quickstart", tiny, 0, None)
    assert matrix.recorded_run(records_file, *row) == record
    for other in (("base line", "quickstart", [*tiny, "seed=1"], 0, None),
                  ("base line", "quickstart", tiny, 1, None), ("baseline", "quickstart", tiny, 0, None),
                  ("base line", "synthetic", tiny, 0, None)):
        assert matrix.recorded_run(records_file, *other) is None
    assert matrix.recorded_run(records_file, *row, strict_code=True) == record  # made by this code
    matrix.add_record(records_file, {**record, "config_sha256": "another", "git_commit": "0" * 40})
    assert matrix.recorded_run(records_file, *row, strict_code=True) is None  # the latest, by other code

    # another matrix's record of the same config stands for it too, under this matrix's label
    elsewhere = tmp_path / "curve.jsonl"
    reused = matrix.recorded_run(elsewhere, "baseline, all", "quickstart", tiny, 0, None)
    assert reused["name"] == "baseline, all" and reused["matrix"] == "curve"
    assert reused["reused_from"] == "demo: base line" and reused["test"] == record["test"]
    assert matrix.recorded_run(elsewhere, "baseline, all", "quickstart", tiny, 1, None) is None
