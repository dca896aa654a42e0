"""The two GAN phase objectives compiled: one traced graph per step instead of Pyro's handlers.

:class:`JitDiscriminatorELBO` and :class:`JitGeneratorELBO` compute exactly the losses
of :class:`~pyro_vigen.infer.DiscriminatorELBO` and
:class:`~pyro_vigen.infer.GeneratorELBO`. Each traces, once per signature, a function
whose inputs are the parameters, the model's tensor arguments and (generator phase)
the snapshot's sampled values and generated batch, and whose outputs are the loss and
what the caller needs afterwards: the model's sampled values and labelled batch
(discriminator phase, for the snapshot) and the penalty (generator phase). A step then
runs one graph, with none of Pyro's handlers, sites or distributions: at the sizes of
the toy problems that is most of a step's cost.

Batch norm (``GANConfig.gen_batch_norm``) compiles too: the graph keeps the module's
mode (train mode: the batch's statistics) and updates the running statistics in place,
on the module's own buffers, as the uncompiled objectives do; the counter
``num_batches_tracked``, which the tracer drops, is advanced after each run (see
:class:`_Graph`). Compiling runs the model a few times and restores the buffers after,
so it leaves no trace in them.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer.util import is_validation_enabled
from pyro.poutine import Trace
from pyro.poutine.runtime import am_i_wrapped
from torch import nn

from .discriminator_elbo import DiscriminatorELBO, discriminator_loss, labelled_batch, param_leaves
from .generator_elbo import GeneratorELBO


def _modules(model, guide) -> list[nn.Module]:
    """The modules ``model`` and ``guide`` are methods of (``gan.model``, ``gan.guide``)."""
    found: dict[int, nn.Module] = {}
    for fn in (model, guide):
        owner = getattr(fn, "__self__", None)
        if isinstance(owner, nn.Module):
            found[id(owner)] = owner
    return list(found.values())


@contextlib.contextmanager
def _compiling(device: torch.device, modules: list[nn.Module]) -> Iterator[None]:
    """Where a phase is traced: a forked random state, no validation, no warnings, and
    the buffers of ``modules`` restored after.

    Tracing runs the model and guide; on a forked random state it draws nothing from the
    training stream, so a run that compiles (again, after a resume) stays reproducible.
    In train mode those runs would also move batch norm's running statistics; restoring
    the buffers leaves them where the uncompiled objectives would have them.
    """
    buffers = [b for m in modules for b in m.buffers()]
    saved = [b.clone() for b in buffers]
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
            # torch 2.x marks torch.jit.trace deprecated; Pyro's JitTrace_ELBO uses it too.
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace` is deprecated")
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            with pyro.validation_enabled(False):
                yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(buffers, saved, strict=True):
                buffer.copy_(value)


def _eager() -> bool:
    """Run uncompiled: while Pyro validates (so its checks see the program), and under any
    outer handler (stock SVI's param capture, a user's trace), which a graph would bypass."""
    return is_validation_enabled() or am_i_wrapped()


class _Graph:
    """A traced function, with the integer buffers its graph fails to advance.

    A traced graph reads a module's buffers as constants that alias them, so batch
    norm's in-place update of its running statistics reaches the module; but an
    in-place op whose result no output depends on is dropped from the graph, as batch
    norm's ``num_batches_tracked += 1`` is. Each integer buffer that the eager run while
    tracing moved by more than one run of the graph does is advanced by the difference
    after every run, so compiled steps leave the buffers as uncompiled ones do. Made
    inside :func:`_compiling`, which restores the buffers after.
    """

    def __init__(self, fn, inputs: tuple, modules: list[nn.Module]) -> None:
        counters = [b for m in modules for b in m.buffers() if not b.is_floating_point()]
        start = [c.clone() for c in counters]
        self.graph = torch.jit.trace(fn, inputs, check_trace=False)
        traced = [c - s for c, s in zip(counters, start, strict=True)]
        start = [c.clone() for c in counters]
        if counters:
            _run(self.graph, *inputs)
        ran = [c - s for c, s in zip(counters, start, strict=True)]
        self.advance = [
            (c, t - r)
            for c, t, r in zip(counters, traced, ran, strict=True)
            if bool((t != r).any())
        ]

    def __call__(self, *inputs):
        out = self.graph(*inputs)
        with torch.no_grad():
            for counter, step in self.advance:
                counter.add_(step)
        return out


def _run(compiled, *inputs):
    # Without the graph executor's optimisations (profiling runs, guards, fused
    # subgraphs with their own backward formulas) the graph records the same autograd
    # ops as eager code: gradients equal the uncompiled objectives', and at these sizes
    # it is faster too. The flag is thread-local.
    with torch.jit.optimized_execution(False):
        return compiled(*inputs)


def _signature(model, guide, args, kwargs) -> tuple:
    # The callables themselves, not their ids: ``gan.model`` is a new bound method at
    # each access (equal and hashing alike, with another id), and an id can be reused.
    shapes = tuple((a.shape, a.dtype, a.device) if isinstance(a, torch.Tensor) else a for a in args)
    # The modes too: a graph keeps the mode it was traced in (batch norm's statistics).
    modes = tuple(m.training for module in _modules(model, guide) for m in module.modules())
    return model, guide, shapes, tuple(sorted(kwargs.items())), modes


def _capture(model, guide, args, kwargs) -> tuple[list[torch.Tensor], list[torch.Tensor], Trace]:
    """The model's and the guide's parameter tensors, and a trace of the model."""
    with torch.no_grad(), poutine.block():
        model_trace = poutine.trace(model).get_trace(*args, **kwargs)
        x, _ = labelled_batch(model_trace)
        guide_trace = poutine.trace(guide).get_trace(x)
    return param_leaves(model_trace), param_leaves(guide_trace), model_trace


def _tensor_positions(args) -> list[int]:
    return [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]


def _with_tensors(args, positions: list[int], tensors) -> tuple:
    args = list(args)
    for i, t in zip(positions, tensors, strict=True):
        args[i] = t
    return tuple(args)


def _trace_of(template: Trace, names: list[str], values, returned) -> Trace:
    """``template``'s sites ``names`` with ``values``, returning ``returned``."""
    trace = Trace()
    for name, value in zip(names, values, strict=True):
        trace.add_node(name, **{**template.nodes[name], "value": value})
    trace.add_node("_RETURN", name="_RETURN", type="return", value=returned)
    return trace


class JitDiscriminatorELBO(DiscriminatorELBO):
    """:class:`~pyro_vigen.infer.DiscriminatorELBO`, compiled once per model, guide and
    argument shapes.

    It runs uncompiled while Pyro's validation is enabled (:func:`~pyro_vigen.infer.fit`
    enables it for a run's first step), so the checks see the model, and under any outer
    Pyro handler: stock :class:`pyro.infer.SVI` finds the parameters through one, so it
    works, without the speed-up; the speed-up is for a loop whose optimiser holds the
    parameters, as :class:`~pyro_vigen.infer.ModuleSVI`. After a compiled evaluation
    :attr:`last_model_trace` is a light trace built from the graph's outputs: the
    model's sample sites and its labelled batch, all a generator snapshot needs.

    The parameters are read once, when compiling: they must be updated in place (as
    optimisers and ``load_state_dict`` do); a model given new parameter tensors needs a
    new objective.

    Example::

        import pyro, torch
        from pyro_vigen.infer import JitDiscriminatorELBO, ModuleSVI
        optim = torch.optim.Adam(gan.discriminator.parameters(), lr=1e-3)  # gan: a VariationalGAN
        svi_d = ModuleSVI(gan.model, gan.guide, optim, JitDiscriminatorELBO())
        with pyro.validation_enabled(False):
            svi_d.step(x)     # x: a data batch; compiles on the first call, then runs the graph
    """

    def __init__(self) -> None:
        self._compiled: dict = {}
        self._last: tuple | None = None
        super().__init__()

    @property
    def last_model_trace(self) -> Trace | None:
        if self._last is None:
            return self._eager_trace
        return _trace_of(*self._last)

    @last_model_trace.setter
    def last_model_trace(self, trace: Trace | None) -> None:
        # The uncompiled path (and __init__) set it.
        self._eager_trace, self._last = trace, None

    def _compile(self, model, guide, args, kwargs) -> tuple:
        positions = _tensor_positions(args)
        with _compiling(args[positions[0]].device, _modules(model, guide)):
            model_params, guide_params, template = _capture(model, guide, args, kwargs)
            # Every sample site (z, noise, the deterministic x_gen), as the model's trace.
            names = [n for n, s in template.nodes.items() if s["type"] == "sample"]
            n_params = len(guide_params) + len(model_params)

            def loss_and_values(*inputs):
                call_args = _with_tensors(args, positions, inputs[n_params:])
                model_trace, trace = DiscriminatorELBO._get_trace(
                    self, model, guide, call_args, kwargs
                )
                values = [model_trace.nodes[n]["value"] for n in names]
                return discriminator_loss(model_trace, trace), *labelled_batch(model_trace), *values

            inputs = (*guide_params, *model_params, *(args[i] for i in positions))
            compiled = _Graph(loss_and_values, inputs, _modules(model, guide))
        return compiled, guide_params, model_params, positions, template, names

    def _loss(self, model, guide, args, kwargs) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if _eager():
            return super()._loss(model, guide, args, kwargs)
        key = _signature(model, guide, args, kwargs)
        if key not in self._compiled:
            self._compiled[key] = self._compile(model, guide, args, kwargs)
        compiled, guide_params, model_params, positions, template, names = self._compiled[key]
        # The model runs without gradient: its parameters go in detached.
        frozen = [p.detach() for p in model_params]
        loss, x, y, *values = _run(compiled, *guide_params, *frozen, *(args[i] for i in positions))
        self._last = (template, names, values, (x, y))
        return loss, guide_params


class JitGeneratorELBO(GeneratorELBO):
    """:class:`~pyro_vigen.infer.GeneratorELBO`, compiled once per model, guide, argument
    shapes and snapshot sites.

    The snapshot enters the graph as inputs (its sampled values and generated batch), so
    one graph serves every snapshot of those shapes. ``prior``, ``loss`` and
    ``reg_weight`` are constants of the graph. Uncompiled and compiled as
    :class:`JitDiscriminatorELBO`, with the same requirement on parameters.

    :param str prior: as :class:`~pyro_vigen.infer.GeneratorELBO`.
    :param float reg_weight: as :class:`~pyro_vigen.infer.GeneratorELBO`.
    :param str loss: as :class:`~pyro_vigen.infer.GeneratorELBO`.

    Example::

        from pyro_vigen.infer import JitGeneratorELBO, ModuleSVI
        elbo = JitGeneratorELBO(prior="data")    # gan, x, svi_d as for JitDiscriminatorELBO
        optim = torch.optim.Adam(gan.generator.parameters(), lr=1e-3)
        svi_g = ModuleSVI(gan.model, gan.guide, optim, elbo)
        with pyro.validation_enabled(False):
            svi_d.step(x)
            elbo.use_snapshot(svi_d.loss.last_model_trace)
            svi_g.step(x), svi_g.step(x)
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._compiled: dict = {}
        self._snapshot_inputs: tuple = ()
        self._snapshot_key: tuple | None = None

    def use_snapshot(self, trace: Trace) -> Trace:
        super().use_snapshot(trace)
        # What a replay fixes: the sampled, unobserved sites.
        names = [
            n for n, s in trace.nodes.items() if s["type"] == "sample" and not s["is_observed"]
        ]
        x_snap, _ = labelled_batch(trace)
        self._snapshot_inputs = (*(trace.nodes[n]["value"] for n in names), x_snap)
        self._snapshot_key = (tuple(names), tuple(t.shape for t in self._snapshot_inputs))
        return trace

    def _compile(self, model, guide, args, kwargs) -> tuple:
        positions = _tensor_positions(args)
        snapshot = self._snapshot
        with _compiling(args[positions[0]].device, _modules(model, guide)):
            model_params, guide_params, _ = _capture(model, guide, args, kwargs)
            n_params, n_args = len(model_params) + len(guide_params), len(positions)
            names = list(self._snapshot_key[0]) if snapshot is not None else []

            def loss_and_penalty(*inputs):
                call_args = _with_tensors(args, positions, inputs[n_params : n_params + n_args])
                replayed = None
                if snapshot is not None:
                    *values, x_snap = inputs[n_params + n_args :]
                    _, y_snap = labelled_batch(snapshot)
                    replayed = _trace_of(snapshot, names, values, (x_snap, y_snap))
                loss, penalty, _ = self._terms(model, guide, call_args, kwargs, replayed)
                return loss + penalty, penalty

            inputs = (*model_params, *guide_params, *(args[i] for i in positions))
            inputs += self._snapshot_inputs if snapshot is not None else ()
            compiled = _Graph(loss_and_penalty, inputs, _modules(model, guide))
        return compiled, model_params, guide_params, positions

    def _loss(self, model, guide, args, kwargs) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if _eager():
            return super()._loss(model, guide, args, kwargs)
        if self._snapshot is None and self.prior == "data":
            self._get_trace(model, guide, args, kwargs, None)  # raises the error to act on
        has_snapshot = self._snapshot is not None
        key = (_signature(model, guide, args, kwargs), self._snapshot_key if has_snapshot else None)
        if key not in self._compiled:
            self._compiled[key] = self._compile(model, guide, args, kwargs)
        compiled, model_params, guide_params, positions = self._compiled[key]
        frozen = [p.detach() for p in guide_params]
        tensors = (args[i] for i in positions)
        snapshot_inputs = self._snapshot_inputs if has_snapshot else ()
        loss, penalty = _run(compiled, *model_params, *frozen, *tensors, *snapshot_inputs)
        self.last_penalty = penalty.item()
        return loss, model_params
