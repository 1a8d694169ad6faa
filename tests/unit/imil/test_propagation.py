"""IMIL's propagation (imil.propagate): proposals at the images' size whatever size the generator
works at, a warm start that continues the previous round's generator, and a generator that stops
training once it reproduces the marks."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hkd.errors import ConfigError
from hkd.imil.edits import Edit
from hkd.imil.oracles import AnnotationOracle
from hkd.imil.propagation import (
    CHECK_EVERY,
    MarkedSamples,
    generator_size,
    propose_irrelevant_regions,
    reproduces_marks,
)
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
    proposals = propose_irrelevant_regions(settings, images, table, set(), number=1).regions
    unedited = [int(i) for i in images.indices if int(i) not in table]
    assert sorted(proposals) == unedited  # threshold 0, no filters: every unedited image proposed
    assert {mask.shape for mask in proposals.values()} == {(64, 64)}


def test_a_warm_start_continues_the_previous_generator(tiny, tmp_path):
    settings, images, table = marked_images(tiny, tmp_path, "imil.propagate_warm_start=true")
    first = propose_irrelevant_regions(settings, images, table, set(), number=1).generator
    before = [p.detach().clone() for p in first.parameters()]
    second = propose_irrelevant_regions(settings, images, table, set(), number=2, previous=first).generator
    assert second is first  # the same network, trained further
    assert any(not torch.equal(a, b) for a, b in zip(before, second.parameters()))
    fresh = propose_irrelevant_regions(dataclasses.replace(settings, warm_start=False), images, table,
                                       set(), number=2).generator
    assert fresh is not first


def test_the_generator_stops_at_the_first_check_where_it_reproduces_the_marks(tiny, tmp_path):
    """Threshold 0 and no filters: every pixel is proposed, so every mark is reproduced (recall 1)
    from the first check on; with the rule off, or a confidence no sigmoid reaches, it trains on
    to imil.propagate_updates."""
    settings, images, table = marked_images(tiny, tmp_path, "imil.propagate_updates=25")
    assert settings.stop_recall == 0.99 and settings.updates == 25
    assert propose_irrelevant_regions(settings, images, table, set(), number=1).updates == CHECK_EVERY
    for never in (dataclasses.replace(settings, stop_recall=None),
                  dataclasses.replace(settings, confidence=1.0)):
        assert propose_irrelevant_regions(never, images, table, set(), number=1).updates == 25


def test_reproducing_the_marks_needs_their_pixels_covered(tiny, tmp_path):
    settings, images, table = marked_images(tiny, tmp_path)
    generator = propose_irrelevant_regions(settings, images, table, set(), number=1).generator
    marks, size = table.clinician_masks(), images.image_size
    assert reproduces_marks(generator, settings, images, marks, size)  # threshold 0: all covered
    nothing = dataclasses.replace(settings, threshold=1.0)  # no pixel proposed: recall 0, nothing accepted
    assert not reproduces_marks(generator, nothing, images, marks, size)
    no_mark_proposable = dataclasses.replace(settings, max_area=0.0)  # nothing to check: not reproduced
    assert not reproduces_marks(generator, no_mark_proposable, images, marks, size)


def test_a_generator_width_list_a_basic_unet_cannot_take_names_its_key(tiny):
    for widths in ("[8,8]", "[8,8,16,32,64,0]"):
        with pytest.raises(ConfigError, match=r"imil\.propagate_features=.*6 positive widths"):
            tiny("imil.enabled=true", "imil.propagate=true", f"imil.propagate_features={widths}")
        with pytest.raises(ConfigError, match=r"prior_generator\.features=.*6 positive widths"):
            tiny(f"prior_generator.features={widths}")
