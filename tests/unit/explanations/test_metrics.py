"""Relevance mass and pointing game on hand-made CAMs and regions."""

import pytest
import torch

from hkd.explanations.metrics import pointing_game, relevance_mass


def test_relevance_mass_and_pointing_game_on_hand_made_maps():
    region = torch.zeros(3, 4, 4)
    region[:, :2, :2] = 1
    cam = torch.zeros(3, 4, 4)
    cam[0, 0, 0] = 1.0  # all energy inside
    cam[1, 3, 3] = 1.0  # all outside
    cam[2, 0, 0], cam[2, 3, 3] = 1.0, 3.0  # a quarter inside, maximum outside
    assert relevance_mass(cam, region).tolist() == pytest.approx([1.0, 0.0, 0.25])
    assert pointing_game(cam, region).tolist() == [1.0, 0.0, 0.0]
    assert relevance_mass(torch.zeros(1, 4, 4), region[:1]).item() == 0.0


def test_an_empty_map_points_nowhere():
    region = torch.zeros(2, 4, 4)
    region[:, 0, 0] = 1  # argmax of an all-zero map would be pixel (0, 0): inside this region
    cams = torch.stack([torch.zeros(4, 4), torch.full((4, 4), 0.3)])
    assert pointing_game(cams, region).tolist() == [0.0, 0.0]
