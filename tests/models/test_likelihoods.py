"""The data each likelihood sees."""

import pytest
import torch

from pyro_vigen.data import DataConfig, load_dataset
from pyro_vigen.models.likelihoods import model_data


def test_model_data_binarises_only_for_the_bernoulli():
    digits = load_dataset(DataConfig("digits"))
    grey = digits.x
    assert ((grey > 0) & (grey < 1)).float().mean() > 0.1  # real grey levels to keep
    assert model_data(digits, "continuous_bernoulli") is grey
    assert model_data(digits, "discretized_logistic") is grey
    assert model_data(digits, "normal") is grey
    binary = model_data(digits, "bernoulli")
    assert set(binary.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(binary == 1, grey > 0.5)


@pytest.mark.parametrize("likelihood", ["continuous_bernoulli", "discretized_logistic"])
def test_grey_level_likelihoods_refuse_data_outside_the_unit_interval(likelihood):
    ring = load_dataset(DataConfig("ring8", num_points=600))
    with pytest.raises(ValueError, match=rf"'{likelihood}' needs data in \[0, 1\]"):
        model_data(ring, likelihood)
