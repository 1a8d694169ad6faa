"""IMIL's propagation (imil.propagate): proposals at the images' size whatever size the generator
works at, and a warm start that continues the previous round's generator."""

from __future__ import annotations

import dataclasses

import torch

from hkd.imil.edits import Edit
from hkd.imil.oracles import AnnotationOracle
from hkd.imil.propagation import MarkedSamples, generator_size, propose_irrelevant_regions
from hkd.run.build import build_datamodule, build_imil_callback, edit_table


def marked_images(tiny, tmp_path, *overrides):
    cfg = tiny("imil.enabled=true", "imil.propagate=true", "prior_generator.epochs=1",
               "imil.propagate_updates=2", "imil.propagate_confidence=0", "imil.propagate_max_area=1",
               "prior_generator.threshold=0", *overrides)
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    images = datamodule.training_images()
    table, oracle = edit_table(cfg), AnnotationOracle(images)
    for idx in images.indices[:4]:
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
