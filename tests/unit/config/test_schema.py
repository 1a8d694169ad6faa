"""The typed configuration (hkd/config/schema.py): wrong types and out-of-range values are refused at load,
naming the file or override and the key; the schema and base.yaml hold the same keys."""

import shutil

import pytest

from hkd.config import ConfigError, experiments_dir, load_config


@pytest.mark.parametrize("override, message", [
    ("trainer.max_epochs=ten", "key 'trainer.max_epochs' is not valid: Value 'ten' of type 'str' could not "
                               "be converted to Integer"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0 must be >= 1"),
    ("trainer.max_epochs=2.5", "key 'trainer.max_epochs' is not valid: Value '2.5'"),
    ("data.batch_size=-3", "data.batch_size=-3 must be >= 1"),
    ("data.eval_batch_size=0", "data.eval_batch_size=0 must be >= 1"),
    ("data.image_size=big", "key 'data.image_size' is not valid"),
    ("data.num_workers=-1", "data.num_workers=-1 must be >= 0"),
    ("data.val_fraction=1.5", r"data.val_fraction=1.5 must be in \[0, 1\]"),
    ("data.test_fraction=-0.1", r"data.test_fraction=-0.1 must be in \[0, 1\]"),
    ("data.train_size=0", "data.train_size=0 must be >= 1"),
    ("data.mean=[a]", r"key 'data.mean\[0\]' is not valid"),
    ("data.include_healthy=maybe", "key 'data.include_healthy' is not valid"),
    ("data.synthetic.n_train=0", "data.synthetic.n_train=0 must be >= 1"),
    ("data.shortcut.bias=2", r"data.shortcut.bias=2.0 must be in \[0, 1\]"),
    ("augment.degrees=270", r"augment.degrees=270.0 must be in \[0, 180\]"),
    ("augment.translate=1.2", r"augment.translate=1.2 must be in \[0, 1\]"),
    ("model.drop_rate=-0.5", r"model.drop_rate=-0.5 must be in \[0, 1\]"),
    ("model.output_stride=0", "model.output_stride=0 must be >= 1"),
    ("optim.lr=0", "optim.lr=0.0 must be > 0"),
    ("optim.lr=fast", "key 'optim.lr' is not valid"),
    ("optim.weight_decay=-1", "optim.weight_decay=-1.0 must be >= 0"),
    ("hkd.alpha=1.5", r"hkd.alpha=1.5 must be in \[0, 1\]"),
    ("hkd.roi_fraction=0", r"hkd.roi_fraction=0.0 must be in \(0, 1\]"),
    ("hkd.kd_epochs=-2", "hkd.kd_epochs=-2 must be >= 0"),
    ("imil.budget=1.5", r"imil.budget=1.5 must be in \[0, 1\]"),
    ("imil.every_n_epochs=0", "imil.every_n_epochs=0 must be >= 1"),
    ("imil.margin=2.5", "key 'imil.margin' is not valid"),
    ("imil.propagate_confidence=2", r"imil.propagate_confidence=2.0 must be in \[0, 1\]"),
    ("prior_generator.threshold=-1", r"prior_generator.threshold=-1.0 must be in \[0, 1\]"),
    ("counterfactual.fraction=1.5", r"counterfactual.fraction=1.5 must be in \(0, 1\]"),
    ("report.bootstrap=-1", "report.bootstrap=-1 must be >= 0"),
    ("training.nonfinite_check_every=0", "training.nonfinite_check_every=0 must be >= 1"),
    ("seed=-1", "seed=-1 must be >= 0"),
    ("trainer.limit_train_batches=-0.5", "trainer.limit_train_batches=-0.5 must be >= 0"),
])
def test_a_bad_value_names_the_override_and_the_key(override, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_config("quickstart", [override])
    assert str(caught.value).startswith(f"override '{override}': ")


def test_values_are_converted_to_their_type():
    cfg = load_config("quickstart", ["optim.lr=1", "trainer.devices=auto", "model.pretrained=/w/resnet.pth",
                                     "trainer.limit_train_batches=3", "data.mean=[1]"])
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.trainer.devices == "auto" and cfg.model.pretrained == "/w/resnet.pth"
    assert cfg.trainer.limit_train_batches == 3 and cfg.data.mean == [1.0]


def test_a_bad_value_in_an_experiment_file_names_the_file(tmp_path):
    experiment = tmp_path / "mine.yaml"
    experiment.write_text("data:\n  batch_size: 0\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: data.batch_size=0 must be >= 1"):
        load_config(str(experiment))
    experiment.write_text("imil:\n  budget: lots\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: key 'imil.budget' is not valid"):
        load_config(str(experiment))


def test_an_interpolated_value_is_checked_once_resolved(tmp_path):
    experiment = tmp_path / "linked.yaml"
    experiment.write_text("hkd:\n  teacher_epochs: ${data.fold}\n")  # fold 0: not a number of epochs
    with pytest.raises(ConfigError, match="the resolved configuration: hkd.teacher_epochs=0 must be >= 1"):
        load_config(str(experiment))


def copy_of_experiments(tmp_path, monkeypatch, edit):
    folder = tmp_path / "experiments"
    shutil.copytree(experiments_dir(), folder)
    base = folder / "base.yaml"
    base.write_text(edit(base.read_text()))
    monkeypatch.setenv("HKD_EXPERIMENTS", str(folder))


def test_a_base_key_the_schema_lacks_is_an_error(tmp_path, monkeypatch):
    copy_of_experiments(tmp_path, monkeypatch, lambda text: text.replace(
        "  fold: 0 ", "  fold: 0\n  folds_extra: 1  # a key without a schema field\n", 1))
    with pytest.raises(ConfigError, match=r"base.yaml: key 'data.folds_extra' is not valid"):
        load_config("quickstart")


def test_a_key_a_users_base_yaml_lacks_takes_the_schemas_default(tmp_path, monkeypatch):
    copy_of_experiments(tmp_path, monkeypatch, lambda text: text.replace(
        "  pin_memory: false          # page-locked host memory for faster GPU copies\n", "").replace(
        "  batch_size: 32 ", "  batch_size: 7 "))
    cfg = load_config("quickstart")
    assert cfg.data.pin_memory is False and cfg.data.batch_size == 7  # the schema's default; the file's value


def test_the_trainer_section_stays_open_and_typed():
    cfg = load_config("quickstart", ["trainer.accumulate_grad_batches=4"])
    assert cfg.trainer.accumulate_grad_batches == 4
    with pytest.raises(ConfigError, match="key 'trainer.num_nodes' is not valid"):
        load_config("quickstart", ["trainer.num_nodes=two"])
