"""Configuration: merge order, unknown keys, enumerated values with suggestions, every experiment file."""

import pytest
from conftest import TINY, make_folder_dataset
from omegaconf import OmegaConf

from hkd.cli import main
from hkd.config import ConfigError, load_config


def test_merge_order_base_then_experiment_then_overrides(tmp_path):
    experiment = tmp_path / "exp.yaml"
    experiment.write_text("trainer:\n  max_epochs: 7\ndata:\n  batch_size: 4\n")
    cfg = load_config(str(experiment), ["data.batch_size=3"])
    assert cfg.trainer.max_epochs == 7  # experiment over base
    assert cfg.data.batch_size == 3  # override over experiment
    assert cfg.data.image_size == 64  # base default kept
    assert cfg.name == "exp"


def test_unknown_key_names_the_key():
    with pytest.raises(ConfigError, match="max_epoch"):
        load_config("quickstart", ["trainer.max_epoch=3"])


def test_unknown_key_in_experiment_file_names_file_and_key(tmp_path):
    experiment = tmp_path / "typo.yaml"
    experiment.write_text("data:\n  batchsize: 4\n")
    with pytest.raises(ConfigError, match=r"typo.yaml.*batchsize"):
        load_config(str(experiment))


def test_extends_chains_experiments(tmp_path):
    (tmp_path / "parent.yaml").write_text("trainer:\n  max_epochs: 9\nseed: 5\n")
    (tmp_path / "child.yaml").write_text(f"extends: {tmp_path / 'parent.yaml'}\nseed: 6\n")
    cfg = load_config(str(tmp_path / "child.yaml"))
    assert (cfg.trainer.max_epochs, cfg.seed) == (9, 6)


@pytest.mark.parametrize("override, message", [
    ("method.name=magic", "method.name"),
    ("data.format=folder", "data.root is required"),
    ("logging.log_model=true", "log_model"),
    ("data.channels=3", "one value per channel"),
    ("seed", "key=value"),
    ("imil.fill=paint", "imil.fill='paint' is not one of zero, mean, blur, noise, inpaint"),
    ("imil.oracle=que",
     "imil.oracle='que' is not one of annotations, queue, sham, none \\(did you mean 'queue'"),
    ("hkd.prior=predictd", "hkd.prior='predictd' is not one of annotations, predicted, none \\(did you mean"),
    ("hkd.roi_mode=blackot", "hkd.roi_mode='blackot' is not one of blackout, soft \\(did you mean"),
    ("data.format=kaggle", "data.format='kaggle' is not one of"),
    ("imil.margin=-1", "imil.margin=-1 must be >= 0"),
    ("counterfactual.fraction=0", "counterfactual.fraction=0.0 must be in \\(0, 1\\]"),
    ("data.format=kermany data.root=. data.include_healthy=true", "data.include_healthy=true applies to"),
    ("optim.scheduler=cosine_per_batch", "optim.scheduler='cosine_per_batch' is not one of"),
])
def test_invalid_values_are_explained(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("quickstart", override.split())


def test_unknown_experiment_lists_available():
    with pytest.raises(ConfigError, match="quickstart"):
        load_config("no_such_experiment")


def test_every_experiment_file_merges_in_struct_mode():
    from hkd.config import experiments_dir

    for path in sorted(experiments_dir().glob("*.yaml")):
        if path.stem == "base":
            continue
        overrides = ["data.root=/tmp"]
        cfg = load_config(path.stem, overrides)
        assert OmegaConf.is_config(cfg) and cfg.name == path.stem


def test_every_base_key_has_a_comment():
    from hkd.config import experiments_dir

    for number, line in enumerate((experiments_dir() / "base.yaml").read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.endswith(":"):
            continue
        assert "#" in line, f"base.yaml line {number} has no comment: {line}"


def test_trainer_keys_are_lightnings_own_with_suggestions():
    cfg = load_config("quickstart", ["trainer.accumulate_grad_batches=4", "trainer.benchmark=true"])
    assert cfg.trainer.accumulate_grad_batches == 4 and cfg.trainer.benchmark is True
    with pytest.raises(ConfigError, match="trainer.max_epoch is not an argument of lightning.Trainer "
                                          r"\(did you mean 'max_epochs'\?\)"):
        load_config("quickstart", ["trainer.max_epoch=3"])
    with pytest.raises(ConfigError, match="trainer.callbacks is set by hkd"):
        load_config("quickstart", ["trainer.callbacks=[]"])


def test_a_renamed_key_still_works_with_a_deprecation_message(tmp_path):
    message = "'trainer.nonfinite_loss' is deprecated, use 'training.nonfinite_loss'"
    with pytest.warns(DeprecationWarning, match=message):
        cfg = load_config("quickstart", ["trainer.nonfinite_loss=skip"])
    assert cfg.training.nonfinite_loss == "skip" and "nonfinite_loss" not in cfg.trainer
    old = tmp_path / "old.yaml"
    old.write_text("extends: quickstart\ntrainer:\n  nonfinite_loss: skip\n")
    with pytest.warns(DeprecationWarning, match="old.yaml"):
        assert load_config(str(old)).training.nonfinite_loss == "skip"


@pytest.mark.parametrize("method", ["rrr", "gradmask", "cam_align"])
def test_compile_refuses_double_backward_methods(tiny, method):
    with pytest.raises(ConfigError, match=f"method.name={method}.*double backward"):
        tiny("model.compile=true", f"method.name={method}")


def test_a_missing_generator_is_a_clear_error(tmp_path, capsys):
    root = make_folder_dataset(tmp_path / "data", n_per_class=4, annotations=False)
    code = main(["train", "quickstart", *TINY, "data.format=folder", f"data.root={root}",
                 f"output_dir={tmp_path / 'runs'}", f"data.cache_dir={tmp_path / 'cache'}",
                 f"data.prior_generator={tmp_path / 'nowhere'}"])
    assert code == 2
    assert "no saved prior generator" in capsys.readouterr().err


def test_pretrained_true_takes_the_models_input_settings_unless_they_are_set(tmp_path):
    cfg = load_config("quickstart", ["model.backbone=convnext_tiny", "model.pretrained=true"])
    assert (cfg.data.image_size, cfg.data.channels) == (224, 3)  # timm's weights' input, not base.yaml's
    assert list(cfg.data.mean) == [0.485, 0.456, 0.406] and list(cfg.data.std) == [0.229, 0.224, 0.225]
    experiment = tmp_path / "gray.yaml"
    experiment.write_text("extends: quickstart\nmodel:\n  backbone: convnext_tiny\n  pretrained: true\n"
                          "data:\n  channels: 1\n")
    gray = load_config(str(experiment), ["data.image_size=128"])
    assert (gray.data.image_size, gray.data.channels) == (128, 1)  # the file's and the override's
    assert list(gray.data.mean) == pytest.approx([0.449]) and list(gray.data.std) == pytest.approx([0.226])
    local = load_config("quickstart", ["model.backbone=convnext_tiny", "model.pretrained=/weights/c.pth"])
    assert (local.data.image_size, local.data.channels, list(local.data.mean)) == (64, 1, [0.5])
