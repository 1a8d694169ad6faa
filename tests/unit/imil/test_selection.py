"""IMIL's pure selection functions (identical on every rank) and its mask encoding."""

import json

import numpy as np

from hkd.imil.masks import decode_mask, encode_mask
from hkd.imil.selection import deduplicate, round_limit, select_outliers, total_budget


def test_selection_ranks_wrong_predictions_by_loss_and_excludes_reviewed():
    idx = np.array([10, 11, 12, 13, 14, 15])
    labels = np.array([0, 1, 2, 3, 0, 1])
    predictions = np.array([1, 1, 0, 0, 0, 0])  # 10, 12, 13, 15 are wrong
    losses = np.array([0.5, 9.0, 2.0, 3.0, 8.0, 2.0])
    assert select_outliers(idx, labels, predictions, losses, set(), 10) == [13, 12, 15, 10]
    assert select_outliers(idx, labels, predictions, losses, {13}, 2) == [12, 15]  # tie -> by idx
    assert select_outliers(idx, labels, predictions, losses, set(), 0) == []


def test_budget_spreads_over_rounds_and_never_exceeds_total():
    total = total_budget(0.04, 600)
    assert total == 24 and total_budget(1.0, 600) == 600 and total_budget(0.001, 600) == 1
    assert total_budget(0.0, 600) == 0
    used, per_round = 0, []
    for _ in range(5):
        limit = round_limit(total, used, rounds=3)
        per_round.append(limit)
        used += limit
    assert per_round == [8, 8, 8, 0, 0] and used == total
    assert round_limit(total, 20, None) == 4


def test_deduplicate_drops_distributed_padding():
    idx = np.array([4, 1, 2, 3, 4, 1])  # two ranks, padded with duplicates
    values = np.array([40, 10, 20, 30, 40, 10])
    unique, kept = deduplicate(idx, values)
    assert unique.tolist() == [1, 2, 3, 4] and kept.tolist() == [10, 20, 30, 40]


def test_mask_encoding_round_trip():
    mask = np.random.default_rng(0).uniform(size=(13, 7)) > 0.5
    encoded = encode_mask(mask)
    assert json.loads(json.dumps(encoded)) == encoded
    assert np.array_equal(decode_mask(encoded), mask)
