"""The five claims: each verdict against metrics written by hand, and the report's table."""

from pathlib import Path

import pytest
import torch

from pyro_vigen.report import check_claims, claims_table
from pyro_vigen.report.runs import RunRecord


def record(kind, seed, metrics, **train):
    config = {
        "kind": kind,
        "data": {"name": "ring8"},
        "model": {},
        "train": {"seed": seed, **train},
    }
    return RunRecord(
        Path(f"/runs/{kind}{train}/seed{seed}"), config, metrics, {}, torch.zeros(1, 2)
    )


def seed_runs(seed, vae=None, classic=None, data_prior=None, ablation=None, steps=2):
    """One seed of the four compare configurations; metrics that hold every claim."""
    base = {"num_modes": 8, "kl_forward": 2.0, "kl_reverse": 100.0, "mode_kl": 0.01}
    vae = {**base, "modes_captured": 8, "hq_fraction": 0.45, **(vae or {})}
    gan = {"num_modes": 8, "kl_forward": 3.0, "kl_reverse": 3.0, "mode_kl": 1.1}
    return [
        record("vae", seed, vae),
        record(
            "gan",
            seed,
            {**gan, "modes_captured": 7, "hq_fraction": 0.8, **(classic or {})},
            prior="mixed",
            gen_steps=1,
        ),  # fmt: skip
        record(
            "gan",
            seed,
            {**gan, "modes_captured": 8, "hq_fraction": 0.95, **(data_prior or {})},
            prior="data",
            gen_steps=steps,
            reg_weight=5.0,
        ),  # fmt: skip
        record(
            "gan",
            seed,
            {**gan, "modes_captured": 3, "hq_fraction": 0.9, **(ablation or {})},
            prior="mixed",
            gen_steps=steps,
        ),  # fmt: skip
    ]


def verdicts(records):
    return {c["key"]: (c["seeds_held"], c["seeds_checked"]) for c in check_claims(records)}


def test_every_claim_holds_on_metrics_that_satisfy_it():
    records = [r for s in range(3) for r in seed_runs(s)]
    assert verdicts(records) == {k: (3, 3) for k in "abcde"}


@pytest.mark.parametrize(
    "changes, failed",
    [
        ({"vae": {"modes_captured": 7}}, "a"),
        ({"vae": {"hq_fraction": 0.8}}, "b"),  # equal is not below
        ({"vae": {"kl_forward": 3.5}}, "c"),
        ({"vae": {"kl_reverse": 2.0}}, "c"),
        ({"vae": {"mode_kl": 1.1}}, "d"),  # equal is not above
        ({"data_prior": {"modes_captured": 2}}, "e"),
        ({"data_prior": {"hq_fraction": 0.85}}, "e"),
    ],
)
def test_a_claim_fails_in_the_seed_that_breaks_it(changes, failed):
    records = seed_runs(0) + seed_runs(1, **changes)
    expected = {k: (2, 2) for k in "abcde"}
    expected[failed] = (1, 2)
    assert verdicts(records) == expected
    failing = next(c for c in check_claims(records) if c["key"] == failed)
    assert [s["seed"] for s in failing["seeds"] if not s["held"]] == [1]
    assert f"({failed}) held in 1 of 2 seeds (FAILED in seed 1)" in claims_table(
        check_claims(records)
    )


def test_the_numbers_behind_a_verdict_are_the_runs_metrics():
    (e,) = [c for c in check_claims(seed_runs(4)) if c["key"] == "e"]
    assert e["seeds"] == [
        {
            "seed": 4,
            "held": True,
            "numbers": {
                "data_prior.modes_captured": 8,
                "data_prior.hq_fraction": 0.95,
                "ablation.modes_captured": 3,
                "ablation.hq_fraction": 0.9,
            },
        }
    ]


def test_claims_no_seed_can_decide_are_kept_as_not_checked():
    # A VAE alone decides (a) only; images without modes would decide none.
    records = [seed_runs(0)[0]]
    assert verdicts(records) == {"a": (1, 1), "b": (0, 0), "c": (0, 0), "d": (0, 0), "e": (0, 0)}
    no_modes = [record("vae", 0, {"kl_forward": 1.0, "kl_reverse": 2.0})]
    assert verdicts(no_modes)["a"] == (0, 0)
    assert "(a) not checked" in claims_table(check_claims(no_modes))


def test_an_ablation_with_other_generator_steps_is_not_the_fair_one():
    runs = seed_runs(0, steps=2)
    runs[3].config["train"]["gen_steps"] = 3  # the mixed-prior run takes 3 steps, not 2
    assert verdicts(runs)["e"] == (0, 0)


def test_two_runs_of_one_role_and_seed_are_refused():
    with pytest.raises(ValueError, match="two vae runs for seed 0"):
        check_claims(seed_runs(0) + [seed_runs(0)[0]])


@pytest.mark.parametrize(
    "name, variance",
    [
        # Centres on the unit circle: 1/2 per axis; plus the modes' own 0.01^2 per axis.
        ("ring8", 2 * (0.5 + 0.01**2)),
        # Centres on {-4,-2,0,2,4}^2: (16 + 4 + 0 + 4 + 16) / 5 = 8 per axis; plus 0.05^2.
        ("grid25", 2 * (8 + 0.05**2)),
    ],
)
def test_the_data_priors_weight_is_relative_to_the_datas_spread(name, variance):
    from pyro_vigen.data import DataConfig
    from pyro_vigen.report import configurations
    from pyro_vigen.report.compare import GEN_STEPS, RELATIVE_REG_WEIGHT

    configs = configurations(DataConfig(name))
    family, settings = configs[f"gan_data_{GEN_STEPS}steps"]
    assert (
        family.name == "gan" and settings["prior"] == "data" and settings["gen_steps"] == GEN_STEPS
    )
    assert settings["reg_weight"] == float(f"{RELATIVE_REG_WEIGHT / variance:.2g}")
    # The fair ablation: the same generator steps, no penalty.
    assert configs[f"gan_mixed_{GEN_STEPS}steps"][1] == {
        "prior": "mixed",
        "gen_steps": GEN_STEPS,
        "lr_decay": settings["lr_decay"],
    }
