r"""The reconstruction term of the ELBO alone: the adversarial autoencoder's first phase."""

from __future__ import annotations

import torch
from pyro.infer import ELBO
from pyro.infer.enum import get_importance_trace
from pyro.infer.util import is_validation_enabled
from pyro.poutine import Trace
from pyro.util import check_if_enumerated, warn_if_nan

from ..errors import UserError


class ReconstructionELBO(ELBO):
    r"""The reconstruction loss :math:`-\mathbb{E}_{q_\phi(z|x)}[\log p_\theta(x|z)]`,
    the ELBO without its KL term.

    The ELBO is :math:`\mathbb{E}_{q_\phi(z|x)}[\log p_\theta(x|z)] -
    KL(q_\phi(z|x)\,\|\,p(z))`. Averaged over the data, the KL term splits into the
    mutual information of x and z under :math:`q` and :math:`KL(q_\phi(z)\,\|\,p(z))`,
    :math:`q_\phi(z)` the aggregate posterior. The adversarial autoencoder [1] keeps
    only the first term here and matches :math:`q_\phi(z)` to :math:`p(z)` by a GAN on
    z (:class:`~pyro_vigen.models.AdversarialAutoencoder`).

    The loss of one particle is minus the summed log-probability of the model's
    *observed* sites, the model replayed against the guide's draws; latent sites enter
    only through those draws (their log-densities, and the guide's, are left out). Like
    :class:`~pyro.infer.Trace_ELBO` it sums over plates (scaled by their subsampling)
    and averages over ``num_particles``, and works with stock :class:`pyro.infer.SVI`.
    The guide's sites must be reparameterised: the gradient reaches the encoder through
    the draws, and a score-function term would need the KL this objective drops.

    Example::

        import pyro
        from pyro_vigen.infer import ReconstructionELBO
        from pyro_vigen.models import VAE, VAEConfig
        vae = VAE(VAEConfig(data_shape=(2,)))
        svi = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}),
                             ReconstructionELBO())
        svi.step(torch.randn(256, 2))    # sum over the batch of -log p(x|z), z ~ q(z|x)

    References:
    [1] Makhzani et al., "Adversarial Autoencoders", arXiv:1511.05644.
    [2] Hoffman and Johnson, "ELBO surgery: yet another way to carve up the variational
    evidence lower bound", NIPS 2016 workshop on approximate inference.
    """

    def _get_trace(self, model, guide, args, kwargs) -> tuple[Trace, Trace]:
        model_trace, guide_trace = get_importance_trace(
            "flat", self.max_plate_nesting, model, guide, args, kwargs
        )
        if is_validation_enabled():
            check_if_enumerated(guide_trace)
            for name, site in guide_trace.nodes.items():
                if site["type"] == "sample" and not site["is_observed"]:
                    if not getattr(site["fn"], "has_rsample", False):
                        raise UserError(
                            f"ReconstructionELBO needs a reparameterised guide; site {name!r} "
                            f"({type(site['fn']).__name__}) has no rsample"
                        )
        return model_trace, guide_trace

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """The loss as a tensor, differentiable in the model's and the guide's parameters."""
        loss = 0.0
        for model_trace, _ in self._get_traces(model, guide, args, kwargs):
            observed = [
                site["log_prob_sum"]
                for site in model_trace.nodes.values()
                if site["type"] == "sample" and site["is_observed"]
            ]
            if not observed:
                raise UserError("ReconstructionELBO needs a model with an observed site (obs=)")
            loss = loss - sum(observed)
        loss = loss / self.num_particles
        warn_if_nan(loss, "loss")
        return loss

    def loss(self, model, guide, *args, **kwargs) -> float:
        """The loss, evaluated without gradient."""
        with torch.no_grad():
            return self.differentiable_loss(model, guide, *args, **kwargs).item()

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """The loss; its gradient accumulated into every parameter it reaches."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return loss.item()
