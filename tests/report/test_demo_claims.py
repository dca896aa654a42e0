"""The main job's configuration, trained as `make demo` trains it, shows the theory on ring8.

One seed of the demo's defaults (the full budget: the claims are about converged models),
checked on the five claims; the demo itself runs three seeds.
"""

import json

from pyro_vigen.data import DataConfig
from pyro_vigen.report import compare


def test_one_seed_of_the_demo_holds_all_five_claims_on_ring8(tmp_path):
    compare(DataConfig("ring8"), 1, tmp_path, progress=False)
    claims = json.loads((tmp_path / "summary.json").read_text())["claims"]
    assert [c["key"] for c in claims] == list("abcde")
    for claim in claims:
        assert claim["seeds_checked"] == 1, claim
        assert claim["seeds_held"] == 1, claim
