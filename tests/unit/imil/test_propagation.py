"""IMIL's propagation (imil.propagate): proposals at the images' size whatever size the generator
works at, a warm start that continues the previous round's generator, and the head on the
classifier's own feature maps (imil.propagate_with=classifier)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import timm
import torch
from torch import nn

from hkd.imil.edits import Edit
from hkd.imil.feature_head import feature_levels
from hkd.imil.oracles import AnnotationOracle
from hkd.imil.propagation import (
    MarkedSamples,
    generator_size,
    propose_from_classifier,
    propose_irrelevant_regions,
)
from hkd.models.prior_generator import dice_scores
from hkd.run.build import build_datamodule, build_imil_callback, build_module, edit_table


def marked_images(tiny, tmp_path, *overrides, marked: int = 4):
    cfg = tiny("imil.enabled=true", "imil.propagate=true", "prior_generator.epochs=1",
               "imil.propagate_updates=2", "imil.propagate_confidence=0", "imil.propagate_max_area=1",
               "prior_generator.threshold=0", *overrides)
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    images = datamodule.training_images()
    table, oracle = edit_table(cfg), AnnotationOracle(images)
    for idx in images.indices[:marked]:
        table[int(idx)] = Edit(mask=oracle.irrelevant_regions(int(idx))[0], round=1, epoch=0, source="oracle")
    return build_imil_callback(cfg, tmp_path).propagation, images, table


def test_a_half_size_generator_learns_small_and_proposes_at_full_size(tiny, tmp_path):
    settings, images, table = marked_images(tiny, tmp_path, "imil.propagate_scale=0.5", "data.image_size=64",
                                            "data.synthetic.size=64")
    assert generator_size(settings.scale, 64) == 32 and generator_size(0.25, 64) == 32  # never below 32
    assert generator_size(1.0, 96) == 96 and generator_size(0.5, 96) == 48
    assert MarkedSamples(images, table.clinician_masks(), 32)[0]["image"].shape[-1] == 32
    proposals, _ = propose_irrelevant_regions(settings, images, table, set(), number=1)
    unedited = [int(i) for i in images.indices if int(i) not in table]
    assert sorted(proposals) == unedited  # threshold 0, no filters: every unedited image proposed
    assert {mask.shape for mask in proposals.values()} == {(64, 64)}


def test_a_warm_start_continues_the_previous_generator(tiny, tmp_path):
    settings, images, table = marked_images(tiny, tmp_path, "imil.propagate_warm_start=true")
    _, first = propose_irrelevant_regions(settings, images, table, set(), number=1)
    before = [p.detach().clone() for p in first.parameters()]
    _, second = propose_irrelevant_regions(settings, images, table, set(), number=2, previous=first)
    assert second is first  # the same network, trained further
    assert any(not torch.equal(a, b) for a, b in zip(before, second.parameters()))
    _, fresh = propose_irrelevant_regions(dataclasses.replace(settings, warm_start=False), images, table,
                                          set(), number=2)
    assert fresh is not first


def test_a_head_on_the_classifier_features_finds_the_marked_regions_in_other_images(tiny, tmp_path):
    """16 marked tags teach a head on a (random-weight) classifier's feature maps where the tags
    are; its proposals for the other training images lie on their own tags, at image size, and
    never on an edited or a rejected image."""
    settings, images, table = marked_images(
        tiny, tmp_path, "imil.propagate_with=classifier", "imil.propagate_updates=100", "data.image_size=64",
        "data.synthetic.size=64", "data.synthetic.n_train=64", "prior_generator.threshold=0.5", marked=16)
    torch.manual_seed(0)
    net = build_module(tiny("data.image_size=64"), images.classes).net.eval()
    before = [p.detach().clone() for p in net.parameters()]
    rejected = {int(images.indices[-1])}
    proposals = propose_from_classifier(settings, net, images, table, rejected, number=1)
    unedited = {int(i) for i in images.indices if int(i) not in table} - rejected
    assert set(proposals) <= unedited and len(proposals) >= len(unedited) // 2
    assert {mask.shape for mask in proposals.values()} == {(64, 64)}
    oracle = AnnotationOracle(images)
    tags = {i: torch.from_numpy(oracle.irrelevant_regions(i)[0])[None] for i in proposals}
    dice = [float(dice_scores(torch.from_numpy(mask)[None], tags[i])) for i, mask in proposals.items()]
    tag_share = np.mean([float(tag.float().mean()) for tag in tags.values()])
    assert np.mean(dice) > 0.4 > 4 * tag_share  # on the tags, far from what a guess the tag's size scores
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # the classifier is only read


def test_the_head_reads_one_level_per_stride_and_refuses_networks_without_feature_maps():
    resnet = timm.create_model("test_resnet", num_classes=2, in_chans=1)
    strides = [resnet.feature_info[i]["reduction"] for i in feature_levels(resnet)]
    assert strides == [4, 8, 16]
    vit = timm.create_model("test_vit", num_classes=2, in_chans=1)
    assert feature_levels(vit) == [len(vit.feature_info) - 1]  # all stride 16: the last block
    with pytest.raises(ValueError, match="imil.propagate_with=generator"):
        feature_levels(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten()))
