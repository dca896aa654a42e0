r"""The five claims of the theory, checked seed by seed on a set of diagnosed runs.

The VAE maximises an ELBO whose KL has the model in the second slot (mode covering);
the GAN's generator minimises one with the model in the first slot (mode seeking); the
data prior adds a proximal penalty to the GAN's generator steps. On data with known
modes, per seed:

- **(a)** the VAE captures every mode;
- **(b)** the VAE's high-quality fraction is below the classic GAN's (blur);
- **(c)** the VAE's forward KL is below the classic GAN's and its reverse KL above it
  (covering against seeking);
- **(d)** the classic GAN's mode KL is above the VAE's (dropped or unbalanced modes);
- **(e)** the data-prior GAN captures at least as many modes as its ablation (the same
  generator steps without the penalty), with at least its high-quality fraction.

They are the theory's predictions, not thresholds fitted to results: a claim either
holds in a seed or it does not, and the numbers behind every verdict are kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..errors import UserError
from ..infer import run_family
from .runs import RunRecord

# The roles a claim compares, and how a run's config.json says it plays one.
ROLES = ("vae", "classic", "data_prior", "ablation")


def role_of(config: dict[str, Any]) -> tuple[str, int] | None:
    """``(role, generator steps)`` of a run, or ``None`` for runs no claim compares.

    The role is the one the run's model family declares (:attr:`Family.role
    <pyro_vigen.infer.Family>`): the VAE family's runs are the VAE; of the GAN family's,
    the classic GAN has the mixed prior and one generator step, and the data-prior
    GAN's ablation the mixed prior and the data prior's number of steps (two or more).
    """
    return run_family(config).role(config)


@dataclasses.dataclass
class Claim:
    """One claim: what it says, and how to check it on one seed's metrics by role."""

    key: str
    text: str
    roles: tuple[str, ...]
    metrics: tuple[str, ...]
    check: Callable[[dict[str, dict[str, float]]], bool]


CLAIMS = [
    Claim(
        "a",
        "the VAE captures every mode",
        ("vae",),
        ("modes_captured", "num_modes"),
        lambda m: m["vae"]["modes_captured"] == m["vae"]["num_modes"],
    ),
    Claim(
        "b",
        "the VAE's high-quality fraction is below the classic GAN's (blur)",
        ("vae", "classic"),
        ("hq_fraction",),
        lambda m: m["vae"]["hq_fraction"] < m["classic"]["hq_fraction"],
    ),
    Claim(
        "c",
        "the VAE's forward KL is below the classic GAN's and its reverse KL above it "
        "(covering vs seeking)",
        ("vae", "classic"),
        ("kl_forward", "kl_reverse"),
        lambda m: (
            m["vae"]["kl_forward"] < m["classic"]["kl_forward"]
            and m["vae"]["kl_reverse"] > m["classic"]["kl_reverse"]
        ),
    ),
    Claim(
        "d",
        "the classic GAN's mode KL is above the VAE's (dropped or unbalanced modes)",
        ("vae", "classic"),
        ("mode_kl",),
        lambda m: m["classic"]["mode_kl"] > m["vae"]["mode_kl"],
    ),
    Claim(
        "e",
        "the data-prior GAN captures at least as many modes as its ablation (same "
        "generator steps, no penalty) with at least its high-quality fraction",
        ("data_prior", "ablation"),
        ("modes_captured", "hq_fraction"),
        lambda m: (
            m["data_prior"]["modes_captured"] >= m["ablation"]["modes_captured"]
            and m["data_prior"]["hq_fraction"] >= m["ablation"]["hq_fraction"]
        ),
    ),
]


def check_claims(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Check every claim in every seed whose runs can decide it.

    A seed decides a claim when it has one run of each role the claim compares, with
    the metrics it reads, each a number (a KL that the diagnosis reported as
    meaningless, null in ``metrics.json``, decides nothing); the ablation must take the data prior's generator steps. A
    claim no seed can decide (no modes known, a configuration missing) is kept with
    ``seeds_checked`` 0, so a report can say it was not checked rather than drop it.

    :param list records: diagnosed runs, e.g. from :func:`~pyro_vigen.report.read_runs`.
    :returns: one dict per claim: ``key`` ("a".."e"), ``text``, ``seeds_held``,
        ``seeds_checked`` and ``seeds``, a list of ``{"seed", "held", "numbers"}`` where
        ``numbers`` maps ``"<role>.<metric>"`` to the value the verdict used.
    :raises ValueError: two runs of the same role and seed (say, two VAE runs with
        different settings), which would make the verdict depend on which one is read.

    Example::

        from pyro_vigen.report import check_claims, read_runs
        for claim in check_claims(read_runs(["runs/demo"])):
            print(claim["key"], claim["seeds_held"], "of", claim["seeds_checked"])
    """
    by_seed: dict[int, dict[str, RunRecord]] = {}
    for r in records:
        role = role_of(r.config)
        if role is None:
            continue
        seat = by_seed.setdefault(r.seed, {})
        if role[0] in seat:
            raise UserError(
                f"two {role[0]} runs for seed {r.seed} ({seat[role[0]].path} and {r.path}): "
                "check the claims on one run of each configuration per seed"
            )
        seat[role[0]] = r
    results = []
    for claim in CLAIMS:
        seeds = []
        for seed in sorted(by_seed):
            runs = by_seed[seed]
            if not all(role in runs for role in claim.roles):
                continue
            if "ablation" in claim.roles and role_of(runs["ablation"].config) != (
                "ablation",
                role_of(runs["data_prior"].config)[1],
            ):
                continue  # not the fair ablation: other generator steps
            metrics = {role: runs[role].metrics for role in claim.roles}
            if not all(_known(metrics[role], k) for role in claim.roles for k in claim.metrics):
                continue
            seeds.append(
                {
                    "seed": seed,
                    "held": bool(claim.check(metrics)),
                    "numbers": {
                        f"{role}.{k}": metrics[role][k]
                        for role in claim.roles
                        for k in claim.metrics
                    },
                }
            )
        results.append(
            {
                "key": claim.key,
                "text": claim.text,
                "seeds_held": sum(s["held"] for s in seeds),
                "seeds_checked": len(seeds),
                "seeds": seeds,
            }
        )
    return results


def _known(metrics: dict[str, Any], key: str) -> bool:
    value = metrics.get(key)
    return value is not None and value == value  # NaN is not equal to itself


def claims_table(claims: list[dict[str, Any]]) -> str:
    """The claims as plain text, one line each, for a terminal.

    :param list claims: what :func:`check_claims` returns.
    :returns: lines ``(a) held in 3 of 3 seeds: the VAE captures every mode``, with the
        failing seeds named where a claim did not hold.
    """
    lines = []
    for c in claims:
        failed = [str(s["seed"]) for s in c["seeds"] if not s["held"]]
        verdict = (
            f"held in {c['seeds_held']} of {c['seeds_checked']} seeds"
            if c["seeds_checked"]
            else "not checked"
        )
        if failed:
            verdict += f" (FAILED in seed {', '.join(failed)})"
        lines.append(f"({c['key']}) {verdict}: {c['text']}")
    return "\n".join(lines)
