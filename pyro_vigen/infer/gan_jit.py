"""The two GAN phase objectives compiled: one traced graph per step instead of Pyro's handlers.

:class:`JitDiscriminatorELBO` and :class:`JitGeneratorELBO` are
:class:`~pyro_vigen.infer.DiscriminatorELBO` and
:class:`~pyro_vigen.infer.GeneratorELBO` with one difference: they trace, once per
signature, the phase's own ``_terms`` (the function the uncompiled objective calls)
as a function of the parameters, the model's tensor arguments and the snapshot's
sampled values and labelled batch, and run that graph instead, as Pyro's
:class:`~pyro.infer.JitTrace_ELBO` traces :class:`~pyro.infer.Trace_ELBO`'s loss.
:meth:`~pyro_vigen.infer.discriminator_elbo.PhaseELBO.snapshot` is compiled the same
way, from the same function as uncompiled. A step then runs one graph, with none of
Pyro's handlers, sites or distributions: at the sizes of the toy problems that is most
of a step's cost. Graphs are kept per model, guide, argument shapes, modes and snapshot
sites; ``prior``, ``loss`` and ``reg_weight`` are constants of them.

They run uncompiled while Pyro's validation is enabled (:func:`~pyro_vigen.infer.fit`
enables it for a run's first step), so the checks see the model, and under any outer
Pyro handler: stock :class:`pyro.infer.SVI` finds the parameters through one, so it
works, without the speed-up; the speed-up is for a loop whose optimiser holds the
parameters, as :class:`~pyro_vigen.infer.GANIteration`. A graph takes the parameters
it was traced with as inputs and reads the buffers as constants: updates in place (as
optimisers and ``load_state_dict`` make) reach it; when the modules hold other
parameter or buffer tensors than it was traced with (a parameter replaced out of place,
buffers that ``.to()`` replaced), the phase is traced again on its next call, so a
graph never runs on tensors the model no longer has.

Batch norm (``GANConfig.gen_batch_norm``) compiles too: the graph keeps the module's
mode (train mode: the batch's statistics) and updates the running statistics in place,
on the module's own buffers, as the uncompiled objectives do; the counter
``num_batches_tracked``, which the tracer drops, is advanced after each run (see
:class:`_Graph`). Compiling runs the model a few times and restores the buffers after,
so it leaves no trace in them.
"""

from __future__ import annotations

import contextlib
import operator
import warnings
from collections.abc import Iterator

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer.util import is_validation_enabled
from pyro.poutine import Trace
from pyro.poutine.runtime import am_i_wrapped
from torch import nn

from .discriminator_elbo import (
    SNAPSHOT,
    DiscriminatorELBO,
    guide_trace,
    labelled_batch,
    param_leaves,
    pop_snapshot,
    trace_model,
)
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


def _signature(model, guide, args, kwargs, submodules: dict) -> tuple:
    # The callables themselves, not their ids: ``gan.model`` is a new bound method at
    # each access (equal and hashing alike, with another id), and an id can be reused.
    shapes = tuple((a.shape, a.dtype, a.device) if isinstance(a, torch.Tensor) else a for a in args)
    # The modes too: a graph keeps the mode it was traced in (batch norm's statistics).
    # Walking the module tree at every step costs a twentieth of a toy GAN iteration,
    # so the submodules are listed once per model and guide (``submodules``, the cache).
    if (model, guide) not in submodules:
        submodules[model, guide] = [m for o in _modules(model, guide) for m in o.modules()]
    modes = tuple(m.training for m in submodules[model, guide])
    return model, guide, shapes, tuple(sorted(kwargs.items())), modes


def _state(submodules: list[nn.Module]) -> list[torch.Tensor]:
    """The parameter and buffer tensors ``submodules`` hold now: those a graph traced now
    would take as inputs or read as constants."""
    # The modules' own dicts, not parameters()/buffers(recurse=False): this runs at
    # every step, and the generators cost ten times as much.
    return [
        t
        for m in submodules
        for tensors in (m._parameters, m._buffers)
        for t in tensors.values()
        if t is not None
    ]


def _same_tensors(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    # Identity, not value: the graph holds those very tensors.
    return len(a) == len(b) and all(map(operator.is_, a, b))


def _graph_params(sites: list[torch.Tensor], modules: list[nn.Module]) -> list[torch.Tensor]:
    """The parameter tensors a graph takes as inputs: those of the param sites, then
    any parameter of ``modules`` not among them.

    The two are the same tensors unless a module's parameter was replaced out of place
    while Pyro's param store kept the old one under its name: the param site then holds
    the old tensor (which the objective moves) and the module's forward reads the new
    one, which a trace must take as an input too (a tensor that requires grad cannot
    be a constant of the graph). The graph then computes what the uncompiled objective
    does.
    """
    params = list(sites)
    for p in (p for m in modules for p in m.parameters()):
        if not any(p is q for q in params):
            params.append(p)
    return params


def _capture(model, guide, args, kwargs) -> tuple[list[torch.Tensor], list[torch.Tensor], Trace]:
    """The model's and the guide's parameter tensors, and a trace of the model."""
    model_trace = trace_model(model, args, kwargs)
    x, y = labelled_batch(model_trace)
    with torch.no_grad(), poutine.block():
        guide_params = param_leaves(guide_trace(guide, x, y))
    return param_leaves(model_trace), guide_params, model_trace


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


def _snapshot_inputs(snapshot: Trace | None) -> tuple[list[str], tuple]:
    """What of a snapshot a graph takes as inputs: the sites a replay fixes (the sampled,
    unobserved ones), their values, and the labelled batch after them."""
    if snapshot is None:
        return [], ()
    names = [n for n, s in snapshot.nodes.items() if s["type"] == "sample" and not s["is_observed"]]
    values = (*(snapshot.nodes[n]["value"] for n in names), *labelled_batch(snapshot))
    return names, values


class _Compiled:
    """Runs a :class:`~pyro_vigen.infer.discriminator_elbo.PhaseELBO`'s ``_loss`` and
    ``snapshot`` as graphs (see the module); mixed in before the phase's class, whose
    methods it traces."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._graphs: dict = {}
        self._submodules: dict = {}

    def _cached(self, key, model, guide, compile_graph):
        """The compiled phase of ``key``: ``compile_graph()``'s, made on the first call
        and again whenever the modules of ``model`` and ``guide`` hold other parameter
        or buffer tensors than when it was made (see the module). Call after
        :func:`_signature`, which lists the modules' submodules."""
        state = _state(self._submodules[model, guide])
        entry = self._graphs.get(key)
        if entry is None or not _same_tensors(entry[0], state):
            entry = self._graphs[key] = (state, compile_graph())
        return entry[1]

    def snapshot(self, model, *args, **kwargs) -> Trace:
        """As uncompiled; compiled, a light trace of the graph's outputs: the model's
        sample sites and its labelled batch, all the phases take of a snapshot."""
        if _eager():
            return super().snapshot(model, *args, **kwargs)
        key = ("snapshot", _signature(model, None, args, kwargs, self._submodules))
        graph, params, positions, template, names = self._cached(
            key, model, None, lambda: self._compile_snapshot(model, args, kwargs)
        )
        # The model runs without gradient: its parameters go in detached.
        x, y, *values = _run(graph, *(p.detach() for p in params), *(args[i] for i in positions))
        return _trace_of(template, names, values, (x, y))

    def _compile_snapshot(self, model, args, kwargs) -> tuple:
        positions = _tensor_positions(args)
        modules = _modules(model, None)
        with _compiling(args[positions[0]].device, modules):
            template = trace_model(model, args, kwargs)
            params = _graph_params(param_leaves(template), modules)
            # Every sample site (z, noise, the deterministic x_gen), as the model's trace.
            names = [n for n, s in template.nodes.items() if s["type"] == "sample"]

            def draw(*inputs):
                trace = trace_model(
                    model, _with_tensors(args, positions, inputs[len(params) :]), kwargs
                )
                return *labelled_batch(trace), *(trace.nodes[n]["value"] for n in names)

            graph = _Graph(draw, (*params, *(args[i] for i in positions)), modules)
        return graph, params, positions, template, names

    def snapshot_loss_and_grads(self, model, guide, *args, **kwargs) -> tuple[Trace, float]:
        """As uncompiled, in one graph that draws the snapshot and scores it (one graph
        run less per discriminator step than :meth:`snapshot` and then the loss)."""
        if _eager():
            return super().snapshot_loss_and_grads(model, guide, *args, **kwargs)
        key = ("snapshot+loss", _signature(model, guide, args, kwargs, self._submodules))
        graph, params, moved, positions, template, names, n_terms = self._cached(
            key, model, guide, lambda: self._compile_snapshot_loss(model, guide, args, kwargs)
        )
        inputs = (p if m else p.detach() for p, m in zip(params, moved, strict=True))
        out = _run(graph, *inputs, *(args[i] for i in positions))
        terms, (x, y, *values) = out[:n_terms], out[n_terms:]
        loss = self._backward(terms, [p for p, m in zip(params, moved, strict=True) if m])[0]
        return _trace_of(template, names, values, (x, y)), loss

    def _compile_snapshot_loss(self, model, guide, args, kwargs) -> tuple:
        positions = _tensor_positions(args)
        modules = _modules(model, guide)
        with _compiling(args[positions[0]].device, modules):
            model_params, guide_params, template = _capture(model, guide, args, kwargs)
            params = _graph_params([*model_params, *guide_params], modules)
            names = [n for n, s in template.nodes.items() if s["type"] == "sample"]
            moved: list[bool] = []
            n_terms: list[int] = []

            def draw_and_score(*inputs):
                call_args = _with_tensors(args, positions, inputs[len(params) :])
                snapshot = trace_model(model, call_args, kwargs)
                out, phase_params = super(_Compiled, self)._loss(
                    model, guide, call_args, {**kwargs, SNAPSHOT: snapshot}
                )
                moved.extend(any(p is q for q in phase_params) for p in params)
                n_terms.append(len(out))
                return *out, *labelled_batch(snapshot), *(snapshot.nodes[n]["value"] for n in names)

            graph = _Graph(draw_and_score, (*params, *(args[i] for i in positions)), modules)
        return graph, params, moved, positions, template, names, n_terms[0]

    def _loss(
        self, model, guide, args, kwargs
    ) -> tuple[tuple[torch.Tensor, ...], list[torch.Tensor]]:
        if _eager():
            return super()._loss(model, guide, args, kwargs)
        snapshot, kwargs = pop_snapshot(kwargs)
        names, snapshot_inputs = _snapshot_inputs(snapshot)
        key = (
            _signature(model, guide, args, kwargs, self._submodules),
            tuple(names),
            tuple(t.shape for t in snapshot_inputs),
        )
        graph, params, moved, positions = self._cached(
            key, model, guide, lambda: self._compile(model, guide, args, kwargs, snapshot)
        )
        # The parameters the phase does not move go in detached: no gradient reaches them.
        inputs = (p if m else p.detach() for p, m in zip(params, moved, strict=True))
        tensors = (args[i] for i in positions)
        terms = _run(graph, *inputs, *tensors, *snapshot_inputs)
        return terms, [p for p, m in zip(params, moved, strict=True) if m]

    def _compile(self, model, guide, args, kwargs, snapshot: Trace | None) -> tuple:
        positions = _tensor_positions(args)
        modules = _modules(model, guide)
        names, snapshot_inputs = _snapshot_inputs(snapshot)
        with _compiling(args[positions[0]].device, modules):
            model_params, guide_params, _ = _capture(model, guide, args, kwargs)
            params = _graph_params([*model_params, *guide_params], modules)
            n_params, n_args = len(params), len(positions)
            moved: list[bool] = []

            def terms(*inputs):
                call_kwargs = dict(kwargs)
                if snapshot is not None:
                    *values, x_snap, y_snap = inputs[n_params + n_args :]
                    call_kwargs[SNAPSHOT] = _trace_of(snapshot, names, values, (x_snap, y_snap))
                call_args = _with_tensors(args, positions, inputs[n_params : n_params + n_args])
                # The uncompiled objective's own loss; the parameters it returns (the
                # very tensors of `params`) are those the phase moves.
                out, phase_params = super(_Compiled, self)._loss(
                    model, guide, call_args, call_kwargs
                )
                moved.extend(any(p is q for q in phase_params) for p in params)
                return out

            inputs = (*params, *(args[i] for i in positions), *snapshot_inputs)
            graph = _Graph(terms, inputs, modules)
        return graph, params, moved, positions


class JitDiscriminatorELBO(_Compiled, DiscriminatorELBO):
    """:class:`~pyro_vigen.infer.DiscriminatorELBO`, compiled (see :mod:`~pyro_vigen.infer.gan_jit`).

    Example::

        import pyro, torch
        from pyro_vigen.infer import JitDiscriminatorELBO, JitGeneratorELBO
        disc, gen = JitDiscriminatorELBO(), JitGeneratorELBO(prior="data")
        optim = torch.optim.Adam(gan.discriminator.parameters(), lr=1e-3)  # gan: a VariationalGAN
        with pyro.validation_enabled(False):
            snapshot = gen.snapshot(gan.model, x)       # x: a data batch; compiles once
            disc.loss_and_grads(gan.model, gan.guide, x, snapshot=snapshot)
            optim.step(), optim.zero_grad()
    """


class JitGeneratorELBO(_Compiled, GeneratorELBO):
    """:class:`~pyro_vigen.infer.GeneratorELBO`, compiled (see :mod:`~pyro_vigen.infer.gan_jit`).

    The snapshot enters the graph as inputs (its sampled values and labelled batch), so
    one graph serves every snapshot of those shapes.

    :param str prior: as :class:`~pyro_vigen.infer.GeneratorELBO`.
    :param float reg_weight: as :class:`~pyro_vigen.infer.GeneratorELBO`.
    :param str loss: as :class:`~pyro_vigen.infer.GeneratorELBO`.

    Example::

        elbo = JitGeneratorELBO(prior="data")   # gan, x, snapshot as for JitDiscriminatorELBO
        optim = torch.optim.Adam(gan.generator.parameters(), lr=1e-3)
        with pyro.validation_enabled(False):
            for _ in range(2):
                loss, penalty = elbo.loss_and_grads_with_penalty(
                    gan.model, gan.guide, x, snapshot=snapshot
                )
                optim.step(), optim.zero_grad()
    """
