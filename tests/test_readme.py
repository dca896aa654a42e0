"""The README's Python snippets run as written (with fewer training steps), and do what
their comments say."""

import re
from pathlib import Path

import pyro
import pytest
import torch
from pyro.infer import TraceMeanField_ELBO

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_snippets_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2
    code = "\n".join(blocks).replace("range(2000)", "range(3)")
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["samples"].shape == (1000, 2)
    assert namespace["snapshot"].nodes["z"]["value"].shape == (256, 2)

    # "the plate scales the batch to the data": the VAE loop's last loss is the whole
    # data set's, len(x) times a per-point loss estimated here on 2,000 other points
    # (without num_data it would be 256 times one, 35 times smaller).
    vae, x = namespace["vae"], namespace["x"]
    with torch.no_grad():
        pyro.set_rng_seed(0)
        per_point = TraceMeanField_ELBO().loss(vae.model, vae.guide, x[:2000], num_data=2000) / 2000
    assert 0.8 < namespace["loss"] / len(x) / per_point < 1.25  # measured 1.00-1.02, seeds 0-4

    # "for _ in range(2)": two generator steps per snapshot, one discriminator step;
    # Adam counts them per parameter (3 iterations here).
    for svi, steps in ((namespace["svi_g"], 6), (namespace["svi_d"], 3)):
        states = svi.optim.get_state().values()
        assert {int(state["state"][0]["step"]) for state in states} == {steps}

    # "the proximal penalty acts only from the 2nd step on": after the loop's two
    # generator steps against the last snapshot, the generator has moved away from
    # it, and the loss is the non-saturating one plus 5 ||G(z) - G'(z)||^2 on the
    # snapshot's z, by hand from the nets.
    gan, snapshot, batch = namespace["gan"], namespace["snapshot"], namespace["batch"]
    z, x_snap = snapshot.nodes["z"]["value"], snapshot.nodes["x_gen"]["value"]
    with torch.no_grad():
        fake = gan.generator(z)
        penalty = 5.0 * (fake - x_snap).pow(2).sum(-1).mean()
        d_fake = torch.sigmoid(gan.discriminator(fake).squeeze(-1))
        expected = -d_fake.log().mean() + penalty
    assert float(penalty) > 1e-4  # measured 0.0018-0.0047, seeds 0-4
    got = namespace["gen_elbo"].loss_and_grads_with_penalty(
        gan.model, gan.guide, batch, snapshot=snapshot
    )
    assert got == (
        pytest.approx(float(expected), abs=1e-6),
        pytest.approx(float(penalty), rel=1e-4),
    )


def test_readme_gives_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    assert (README.parent / "docs" / "_static" / "report.png").is_file()
