"""The GAN as a Pyro model/guide pair over the real/fake label."""

from __future__ import annotations

import dataclasses

import pyro
import pyro.distributions as dist
import torch
from pyro.poutine.replay_messenger import ReplayMessenger
from pyro.poutine.runtime import _PYRO_STACK
from torch import nn

from ..config import Config, require_positive
from ..errors import UserError
from ..flags import setting
from ..nets import MLP, DCGANDiscriminator, DCGANGenerator
from ..nets.mlp import ACTIVATIONS
from .naming import register_parts, unique_name

#: Dimension of the generator's noise when :class:`GANConfig` leaves it to the data.
DEFAULT_NOISE_DIM = {"points": 2, "images": 64}


@dataclasses.dataclass
class GANConfig(Config):
    """Architecture of a :class:`VariationalGAN`.

    :param tuple data_shape: shape of one data point, ``(D,)`` or ``(C, H, W)``; training
        fills it from the data when it is ``None``.
    :param int noise_dim: dimension of the generator's input noise z; ``None`` picks
        :data:`DEFAULT_NOISE_DIM`: 2 for points, 64 for images (DCGAN draws 100).
    :param tuple hidden: hidden widths of the MLP generator and discriminator (points);
        images use the DCGAN nets (:class:`~pyro_vigen.nets.DCGANGenerator`,
        :class:`~pyro_vigen.nets.DCGANDiscriminator`) instead.
    :param str activation: hidden activation of the MLPs.
    :param float obs_scale: standard deviation of Gaussian observation noise around
        :math:`G_\\theta(z)`; ``None`` (the classic GAN) makes the generator deterministic
        given z.
    :param int pack: points m the discriminator sees at once (PacGAN [1]): it labels a
        pack of m points of one source, concatenated along the features (points) or the
        channels (images). 1 is the classic GAN.
    :param tuple gen_hidden: hidden widths of the MLP generator; ``None`` takes ``hidden``.
    :param tuple disc_hidden: hidden widths of the MLP discriminator; ``None`` takes
        ``hidden``. Its input layer takes a pack (m times a point's width); its hidden
        widths do not grow with the pack, as in PacGAN's 2-D experiments.
    :param bool gen_batch_norm: batch norm in the generator's hidden layers (linear
        without bias, batch norm, activation: see :class:`~pyro_vigen.nets.MLP`), as the
        generator of the PacGAN and VEEGAN 2-D experiments [1]. Points only. In
        training (train mode) every run of :meth:`VariationalGAN.model` normalises its
        generated batch with the batch's statistics and moves the running statistics:
        each discriminator step's run and each generator step's, ``disc_steps +
        gen_steps`` updates an iteration. A generator step replays the snapshot's z, so at the
        snapshot it computes the snapshot's very points and the data prior's penalty
        still vanishes there. :meth:`VariationalGAN.sample` uses the running statistics.
    :param int disc_maxout: maxout pieces of the discriminator's hidden layers
        (:class:`~pyro_vigen.nets.Maxout`, which replaces ``activation`` there); 1 is
        the plain activation. PacGAN's 2-D discriminator takes 5. Points only.
    :param float init_std: initialise the weights of every linear and convolutional
        layer from :math:`\\mathcal{N}(0, s^2)`, s = ``init_std``, and their biases at 0
        (PacGAN's 2-D experiments: 0.02); ``None`` keeps PyTorch's default
        initialisation. Batch norm's scale and shift start at 1 and 0 either way.
        Points only: the DCGAN nets of images always take DCGAN's initialisation.
    :param int conv_width: channels of the DCGAN nets of images: the discriminator's
        first convolution and the generator's last hidden layer (doubling towards the
        small grid in between). Images only.

    The defaults build exactly the nets (and draw exactly the initial values) of a
    config without these five options.

    Example::

        from pyro_vigen.models import GANConfig, VariationalGAN
        config = GANConfig(data_shape=(2,), noise_dim=4, obs_scale=0.05)
        gan = VariationalGAN(config)
        gan.sample(100).shape             # torch.Size([100, 2])
        # PacGAN's 2-D architecture, packing 2 points:
        pacgan2 = GANConfig(data_shape=(2,), gen_hidden=(400,) * 4, gen_batch_norm=True,
                            disc_hidden=(200,) * 3, disc_maxout=5, init_std=0.02, pack=2)

    References:
    [1] Lin et al., "PacGAN: The power of two samples in generative adversarial
    networks", NeurIPS 2018; the 2-D architecture follows Srivastava et al., "VEEGAN:
    Reducing mode collapse in GANs using implicit variational learning", NeurIPS 2017.
    """

    # No flag: training takes it from the data.
    data_shape: tuple[int, ...] | None = None
    noise_dim: int | None = setting(None, help="dimension of z (default: 2; 64 for images)")
    hidden: tuple[int, ...] = setting((128, 128), help="MLP hidden widths")
    activation: str = setting("relu", choices=ACTIVATIONS, help="hidden activation of the MLPs")
    obs_scale: float | None = setting(
        None, help="Gaussian noise std around G(z) (default: none, the classic GAN)"
    )
    pack: int = setting(
        1,
        help="points the discriminator sees at once (PacGAN; a divisor of --batch-size; "
        "1 is the classic GAN)",
    )
    gen_hidden: tuple[int, ...] | None = setting(None, help="generator widths (default: --hidden)")
    disc_hidden: tuple[int, ...] | None = setting(
        None, help="discriminator widths (default: --hidden)"
    )
    gen_batch_norm: bool = setting(False, help="batch norm in the generator (points)")
    disc_maxout: int = setting(
        1, help="maxout pieces of the discriminator's hidden units (points; 1: none)"
    )
    init_std: float | None = setting(
        None,
        help="initial weights from N(0, s^2) (points; default: PyTorch's initialisation)",
    )
    conv_width: int = setting(64, help="channels of the DCGAN nets of images")

    def __post_init__(self) -> None:
        if self.data_shape is not None:
            self.data_shape = tuple(self.data_shape)
            if self.noise_dim is None:
                image = len(self.data_shape) == 3
                self.noise_dim = DEFAULT_NOISE_DIM["images" if image else "points"]
        self.hidden = tuple(self.hidden)
        if self.noise_dim is not None:
            require_positive("noise_dim", self.noise_dim, integer=True)
        if self.obs_scale is not None:
            require_positive("obs_scale", self.obs_scale)
        require_positive("pack", self.pack, integer=True)
        for name in ("gen_hidden", "disc_hidden"):
            widths = getattr(self, name)
            if widths is not None:
                widths = tuple(widths)
                for width in widths:
                    require_positive(f"each width of {name}", width, integer=True)
                setattr(self, name, widths)
        if not isinstance(self.gen_batch_norm, bool):
            raise UserError(f"gen_batch_norm must be true or false, got {self.gen_batch_norm!r}")
        require_positive("disc_maxout", self.disc_maxout, integer=True)
        if self.init_std is not None:
            require_positive("init_std", self.init_std)
        require_positive("conv_width", self.conv_width, integer=True)
        if self.data_shape is not None and len(self.data_shape) == 3:
            if self.gen_batch_norm or self.disc_maxout != 1 or self.init_std is not None:
                raise UserError(
                    "gen_batch_norm, disc_maxout and init_std apply to the MLPs of points; "
                    "the DCGAN nets of images have their own batch norm and initialisation"
                )


def pack_rows(x: torch.Tensor, pack: int) -> torch.Tensor:
    """Each ``pack`` consecutive rows of ``x`` as one row: PacGAN's packs.

    Points ``(N m, D)`` become ``(N, m D)`` and images ``(N m, C, H, W)`` become
    ``(N, m C, H, W)``: a pack's points concatenated along the features or the channels.

    :param x: points, one per row.
    :param int pack: points per pack, m.
    :raises ValueError: the rows do not split into packs of ``pack``.
    """
    n = x.shape[0]
    if n % pack:
        raise UserError(
            f"{n} points do not split into packs of {pack}; give a multiple of {pack} points"
        )
    return x.reshape(n // pack, pack * x.shape[1], *x.shape[2:])


def _replayed_against_drawn_labels() -> bool:
    """Whether a handler replays the model against a trace in which ``y`` was drawn.

    Stock ELBOs run a model so: the guide first, drawing the labels y at random, then
    the model replayed against the guide's trace, site by site. The GAN's own
    objectives never do: they run the model first, then the guide with y given.
    """
    for frame in _PYRO_STACK:
        if isinstance(frame, ReplayMessenger) and frame.trace is not None:
            site = frame.trace.nodes.get("y")
            if site is not None and site["type"] == "sample" and not site["is_observed"]:
                return True
    return False


class VariationalGAN(nn.Module):
    r"""The GAN written as variational inference over the label y (1 = real, 0 = generated).

    The "generative" side is :math:`p_\theta(x|y)\,p(y)` with :math:`p(y)` uniform,
    :math:`p_\theta(x|y=1) = p_{data}(x)` and :math:`p_\theta(x|y=0) = p_g(x)`, the law of
    :math:`G_\theta(z)`, :math:`z \sim \mathcal{N}(0, I)` (plus
    :math:`\mathcal{N}(0, s^2 I)` noise when ``obs_scale`` = s is set). The
    "inference" side is the discriminator
    :math:`q_\phi(y|x) = \mathrm{Bernoulli}(\sigma(D_\phi(x)))`. With ``pack`` = m > 1
    (PacGAN [4]) one label covers m points: :math:`y \sim p(y)`, then
    :math:`x_1, \dots, x_m` drawn independently from :math:`p_\theta(x|y)`, and the
    discriminator infers y from the whole pack, :math:`q_\phi(y|x_1, \dots, x_m)`. With x
    latent and y observed, the two GAN phases are the objectives
    :class:`~pyro_vigen.infer.DiscriminatorELBO` and
    :class:`~pyro_vigen.infer.GeneratorELBO`; both work with stock
    :class:`pyro.infer.SVI`::

        gan = VariationalGAN(GANConfig(data_shape=(2,)))
        adam = {"lr": 1e-3, "betas": (0.5, 0.999)}
        svi_d = SVI(gan.model, gan.guide, pyro.optim.Adam(adam), DiscriminatorELBO())
        svi_g = SVI(gan.model, gan.guide, pyro.optim.Adam(adam), GeneratorELBO())
        svi_d.step(x_batch)
        svi_g.step(x_batch)

    Stock ELBOs (:class:`~pyro.infer.Trace_ELBO` and the rest) have no meaning here:
    they score every latent site of the model by its log-density, and the generated
    points have none (:math:`p_g` is implicit), while the guide's y is no site of the
    model. :meth:`model` refuses to run under one. :class:`pyro.infer.Predictive` on
    ``model`` draws generated batches (see :meth:`model`).

    The generator's parameters are registered only by ``model`` and the discriminator's
    only by ``guide``, under ``<name>$$$generator.*`` and ``<name>$$$discriminator.*``
    (the names ``pyro.module(name, gan)`` would give), so each phase can hand just its
    own parameters to its optimiser.

    :param GANConfig config: the architecture.
    :param str name: the Pyro name its parameters are registered under; unique by default,
        so two models in one process never share parameters.

    References:
    [1] Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014.
    [2] Hu et al., "On Unifying Deep Generative Models", ICLR 2018.
    [3] Su, "Variational Inference: A Unified Framework of Generative Models and Some
    Revelations", arXiv:1807.05936.
    [4] Lin et al., "PacGAN: The power of two samples in generative adversarial
    networks", NeurIPS 2018.
    """

    #: The generator phase scores the generated rows only (:class:`~pyro_vigen.infer.GeneratorELBO`).
    generator_rows = "generated"

    def __init__(self, config: GANConfig, *, name: str | None = None) -> None:
        super().__init__()
        if config.data_shape is None:
            raise UserError(
                "GANConfig.data_shape must be set to build a GAN, e.g. GANConfig(data_shape=(2,))"
            )
        self.config = config
        self.name = name or unique_name("gan")
        shape = config.data_shape
        # The discriminator sees a pack: m points concatenated along features or channels.
        packed = (config.pack * shape[0], *shape[1:])
        if len(shape) == 3:
            self.generator = DCGANGenerator(config.noise_dim, shape, config.conv_width)
            self.discriminator = DCGANDiscriminator(packed, config.conv_width)
            return
        gen_hidden = config.hidden if config.gen_hidden is None else config.gen_hidden
        disc_hidden = config.hidden if config.disc_hidden is None else config.disc_hidden
        self.generator = MLP(
            config.noise_dim,
            gen_hidden,
            shape[0],
            config.activation,
            batch_norm=config.gen_batch_norm,
        )
        self.discriminator = MLP(
            packed[0], disc_hidden, 1, config.activation, maxout=config.disc_maxout
        )
        if config.init_std is not None:
            for layer in self.modules():
                if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                    nn.init.normal_(layer.weight, 0.0, config.init_std)
                    if layer.bias is not None:
                        nn.init.zeros_(layer.bias)

    @property
    def event_dim(self) -> int:
        return len(self.config.data_shape)

    def packs(self, x: torch.Tensor) -> torch.Tensor:
        """The points ``x`` as the discriminator takes them: see :func:`pack_rows`."""
        return pack_rows(x, self.config.pack)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The discriminator's logit :math:`D_\\phi(x)` of each row, shape ``(N,)``.

        A row is a pack (:meth:`packs`): with ``pack`` = 1 a point. At the optimal
        discriminator it equals :math:`\\log p_{data}(x) / p_g(x)` (for a pack, the ratio
        of the product densities: :math:`\\sum_i \\log p_{data}(x_i) / p_g(x_i)`), so it is
        also a density-ratio estimate. Differentiable (the guide uses it); wrap it in
        ``torch.no_grad()`` for evaluation.
        """
        return self.discriminator(x).squeeze(-1)

    def _check_batch(self, x: torch.Tensor | None, needs: str, hint: str = "") -> None:
        """Refuse, with ``needs`` and ``hint`` around the shape, what is not a batch of points."""
        shape = self.config.data_shape
        if x is None or x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            got = "None" if x is None else f"shape {tuple(x.shape)}"
            batch = ", ".join(("N", *map(str, shape)))
            raise UserError(f"{needs} of shape ({batch}), got {got}{hint}")

    def model(self, x_real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:math:`p_\\theta(x|y)\\,p(y)`: the labelled batch of ``x_real`` and as many generated points.

        The expectation over the uniform :math:`p(y)` is stratified: the batch holds each
        label equally often. Sample sites: ``z`` (and ``noise`` with ``obs_scale``), and
        the deterministic ``x_gen``, all in the plate ``generated``.

        ``Predictive(gan.model, num_samples=S)(x_real)`` draws S such batches: ``z`` and
        ``x_gen`` of shape ``(S, N, ...)``, N the rows of ``x_real``; draws of
        :math:`p_g` alone come from :meth:`sample`. A guide given to ``Predictive``
        changes nothing, y being no site of the model.

        :param x_real: a batch of real points, shape ``(N, *data_shape)``.
        :returns: ``(x, y)``: ``x`` is ``x_real`` followed by the generated points, ``y``
            one label per pack of m = ``pack`` consecutive rows of ``x``: 1 for the
            packs of real points, 0 for the generated ones.
        :raises ValueError: ``x_real`` is missing or of another shape, its rows do not
            split into packs, or a stock ELBO runs the model (see the class).
        """
        if _replayed_against_drawn_labels():
            raise UserError(
                "stock Pyro ELBOs such as Trace_ELBO cannot fit a VariationalGAN (its "
                "generated points have no density to score); train it with "
                "pyro_vigen.infer.DiscriminatorELBO and GeneratorELBO, one SVI each"
            )
        self._check_batch(
            x_real,
            "VariationalGAN.model needs a batch of real points x_real",
            "; to draw from the generator alone, call gan.sample(n)",
        )
        register_parts(self.name, self, ("generator",))
        n, m = x_real.shape[0], self.config.pack
        if n % m:
            raise UserError(
                f"a batch of {n} real points does not split into packs of {m} (the GAN's "
                f"pack); give a batch size that is a multiple of {m}"
            )
        with pyro.plate("generated", n):
            loc = x_real.new_zeros((n, self.config.noise_dim))
            z = pyro.sample("z", dist.Normal(loc, torch.ones_like(loc)).to_event(1))
            x_gen = self.generator(z)
            if self.config.obs_scale is not None:
                # Noise as its own site (not a Normal site for x_gen itself), so that
                # replaying a trace fixes z and the noise while x_gen still follows theta.
                scale = torch.full_like(x_gen, self.config.obs_scale)
                noise = pyro.sample(
                    "noise", dist.Normal(torch.zeros_like(x_gen), scale).to_event(self.event_dim)
                )
                x_gen = x_gen + noise
            x_gen = pyro.deterministic("x_gen", x_gen, event_dim=self.event_dim)
        y = torch.cat([x_real.new_ones(n // m), x_real.new_zeros(n // m)])
        return torch.cat([x_real, x_gen]), y

    def guide(self, x: torch.Tensor) -> None:
        """:math:`q_\\phi(y|x) = \\mathrm{Bernoulli}(\\sigma(D_\\phi(x)))`, a ``y`` site per pack of ``x``.

        ``x`` holds points; each ``pack`` consecutive rows are one pack (:meth:`packs`),
        with ``pack`` = 1 each row. The objectives run it on the model's labelled batch
        with ``y`` conditioned on the labels; called on its own it draws labels for ``x``.

        :raises ValueError: ``x`` is not a batch of points, or its rows do not split
            into packs.
        """
        self._check_batch(x, "VariationalGAN.guide needs a batch of points x")
        register_parts(self.name, self, ("discriminator",))
        logits = self.logits(self.packs(x))
        with pyro.plate("labelled", logits.shape[0]):
            pyro.sample("y", dist.Bernoulli(logits=logits))

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` points from the generator's distribution :math:`p_g(x)`.

        The generator runs in eval mode, whatever mode the model is in (restored after):
        with ``gen_batch_norm``, batch norm normalises with its running statistics, so
        a sample does not depend on the other points drawn with it and sampling leaves
        the statistics untouched (in train mode each call would update them). This is
        how PacGAN's reference code draws its evaluation samples. Without batch norm
        the modes compute the same. Training (:meth:`model`) runs in the module's mode:
        train mode, batch statistics, as :func:`~pyro_vigen.infer.train` runs it.

        :param int n: points to draw (any n, also 1, with batch norm).
        :param generator: the random generator of z (and the noise).
        """
        device = next(self.parameters()).device
        z = torch.randn(n, self.config.noise_dim, generator=generator, device=device)
        training = self.generator.training
        self.generator.eval()
        try:
            x = self.generator(z)
        finally:
            self.generator.train(training)
        if self.config.obs_scale is not None:
            noise = torch.randn(x.shape, generator=generator, device=device)
            x = x + self.config.obs_scale * noise
        return x
