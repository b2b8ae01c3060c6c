"""PyTorch's own module tests for ``nn.RNN``, ``nn.GRU`` and ``nn.LSTM``, run on our layers.

``torch.testing._internal.common_modules.module_db`` (it ships in every torch wheel; importing it
needs ``expecttest``, in the ``dev`` extra) lists the inputs PyTorch tests its recurrent modules with:
unbatched inputs, given hidden states, ``bias=False``, ``batch_first``, bidirectional, packed
sequences, ``proj_size`` for the LSTM, float32 and float64, train and eval, and error inputs with the
exception each must raise. Every entry runs here against the layer of the same name in
:mod:`namemodels.kernels`:

* valid inputs (``test_same_as_torch``): the same constructor input, ``load_state_dict`` from the torch
  module, the same forward input; outputs, states and the gradients of a weighted sum of them with
  respect to every input tensor and every parameter must match torch's. On the torch fallback for
  every entry, and on the fused Triton kernels (Triton's interpreter on the CPU) for a subset
  (``test_same_as_torch_fused``) that keeps CI fast;
* error inputs (``test_errors_are_torchs``): the same exception type, its message matching torch's
  pattern (and torch itself still raising it, so the database and this test agree);
* the momentum layers (``test_momentum_same_as_reference``): the same inputs through
  ``MomentumRNN/GRU/LSTM`` against a float64 reference built from
  :func:`namemodels.kernels.naive.naive_layer` (one step at a time, autograd for the gradients).
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence
from torch.testing._internal.common_modules import ModuleErrorEnum, module_db

from namemodels import kernels
from namemodels.kernels.naive import naive_layer

pytestmark = pytest.mark.usefixtures("single_thread")

INFOS = [info for info in module_db if info.module_cls in (torch.nn.RNN, torch.nn.GRU, torch.nn.LSTM)]
DTYPES = (torch.float32, torch.float64)


@functools.cache
def _samples(name: str, dtype: torch.dtype, training: bool) -> tuple:
    """The module_db samples of ``nn.<name>`` (made under a fixed seed, so every call gives the same)."""
    info = next(i for i in INFOS if i.module_cls.__name__ == name)
    torch.manual_seed(0)
    return tuple(
        info.module_inputs_func(
            info, device="cpu", dtype=dtype, requires_grad=True, training=training, with_packed_sequence=True
        )
    )


def _describe(sample) -> str:
    kw = sample.constructor_input.kwargs
    parts = [
        f"{k}={int(v) if isinstance(v, bool) else v}"
        for k, v in kw.items()
        if k not in ("input_size", "hidden_size", "num_layers")
    ]
    fwd = sample.forward_input.args
    kind = "packed" if isinstance(fwd[0], PackedSequence) else ("unbatched" if fwd[0].dim() == 2 else "batched")
    return ",".join(parts + [kind] + (["hx"] if len(fwd) > 1 else []))


def _cases() -> list[Any]:
    cases = []
    for info in INFOS:
        name = info.module_cls.__name__
        for dtype in DTYPES:
            for training in (True, False):
                for k, sample in enumerate(_samples(name, dtype, training)):
                    cid = f"{name}-{str(dtype)[6:]}-{'train' if training else 'eval'}-{k}-{_describe(sample)}"
                    cases.append(pytest.param(name, dtype, training, k, id=cid))
    return cases


CASES = _cases()


def _fresh(obj):
    """A copy of a forward input with new leaf tensors (the same values and ``requires_grad``)."""
    if isinstance(obj, PackedSequence):
        return PackedSequence(_fresh(obj.data), obj.batch_sizes, obj.sorted_indices, obj.unsorted_indices)
    if torch.is_tensor(obj):
        return obj.detach().clone().requires_grad_(obj.requires_grad)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_fresh(o) for o in obj)
    return obj


def _tensors(obj) -> list[torch.Tensor]:
    """The tensors in an input or output, in order (a PackedSequence by its data)."""
    if isinstance(obj, PackedSequence):
        return [obj.data]
    if torch.is_tensor(obj):
        return [obj]
    return [t for o in obj for t in _tensors(o)]


def _weighted_sum(outputs: list[torch.Tensor]) -> torch.Tensor:
    """A loss that gives every output element its own weight (fixed, so both runs get the same)."""
    gen = torch.Generator().manual_seed(1)
    return sum((o * torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.dtype)).sum() for o in outputs)


def _run(module: torch.nn.Module, forward_input) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Outputs and states as a flat list, and the gradients of :func:`_weighted_sum` of them with
    respect to every input tensor that requires grad, then every parameter."""
    args = _fresh(forward_input.args)
    leaves = [t for t in _tensors(args) if t.requires_grad]
    outputs = _tensors(module(*args))
    grads = torch.autograd.grad(_weighted_sum(outputs), leaves + list(module.parameters()))
    return [o.detach() for o in outputs], list(grads)


def _tolerance(dtype: torch.dtype, fused: bool = False) -> dict:
    if dtype == torch.float64:
        return dict(atol=1e-10, rtol=1e-8)
    return dict(atol=2e-5, rtol=1e-4) if fused else dict(atol=1e-5, rtol=1.3e-6)


def _compare_with_torch(name: str, dtype: torch.dtype, training: bool, k: int, backend: str) -> None:
    sample = _samples(name, dtype, training)[k]
    args, kwargs = sample.constructor_input.args, sample.constructor_input.kwargs
    torch.manual_seed(0)
    theirs = getattr(torch.nn, name)(*args, **kwargs).to(dtype).train(training)
    ours = getattr(kernels, name)(*args, **kwargs, backend=backend).to(dtype).train(training)
    ours.load_state_dict(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    want_out, want_grads = _run(theirs, sample.forward_input)
    got_out, got_grads = _run(ours, sample.forward_input)
    assert ours.last_backend[0] == backend, ours.last_backend
    assert len(got_out) == len(want_out) and len(got_grads) == len(want_grads)
    tol = _tolerance(dtype, fused=backend == "triton")
    for got, want in zip(got_out + got_grads, want_out + want_grads):
        torch.testing.assert_close(got, want, **tol)


@pytest.mark.parametrize("name,dtype,training,k", CASES)
def test_same_as_torch(name, dtype, training, k):
    """Every module_db sample on the torch fallback: outputs, states, input and weight gradients."""
    _compare_with_torch(name, dtype, training, k, "torch")


# The fused kernels in Triton's interpreter: float32 (the kernels' widest type), training, and a spread
# of samples per class that covers unbatched, given states, bias=False, batch_first, bidirectional,
# packed input (a few seconds each in the interpreter). The fused kernels have no LSTM projection:
# with proj_size the torch fallback runs (tests/kernels/test_layers.py checks what last_backend says).
FUSED = {"RNN": (1, 6, 14, 47), "GRU": (3, 5, 18, 30), "LSTM": (1, 13, 28)}  # LSTM: proj_size=0 (see test_layers)
FUSED_CASES = [p for p in CASES if p.values[1] == torch.float32 and p.values[2] and p.values[3] in FUSED[p.values[0]]]


@pytest.mark.parametrize("name,dtype,training,k", FUSED_CASES)
def test_same_as_torch_fused(name, dtype, training, k):
    pytest.importorskip("triton")
    _compare_with_torch(name, dtype, training, k, "triton")


def _error_cases() -> list[Any]:
    cases = []
    for info in INFOS:
        for dtype in DTYPES:
            errors = info.module_error_inputs_func(info, device="cpu", dtype=dtype, requires_grad=False, training=True)
            for k, err in enumerate(errors):
                ci = err.module_error_input.constructor_input
                desc = ",".join(
                    [repr(a) for a in ci.args]
                    + [f"{key}={v!r}" for key, v in ci.kwargs.items() if key not in ("device", "dtype")]
                )
                cases.append(pytest.param(info, err, id=f"{info.module_cls.__name__}-{str(dtype)[6:]}-{k}-{desc}"))
    return cases


@pytest.mark.parametrize("info,err", _error_cases())
def test_errors_are_torchs(info, err):
    """Error inputs: torch raises the database's exception (checked, so the two cannot drift apart),
    and so does our layer, with a message matching the same pattern."""
    sample = err.module_error_input
    args, kwargs = sample.constructor_input.args, sample.constructor_input.kwargs
    ours_cls = getattr(kernels, info.module_cls.__name__)
    for cls in (info.module_cls, ours_cls):
        with pytest.raises(err.error_type, match=err.error_regex):
            module = cls(*args, **kwargs)
            if err.error_on == ModuleErrorEnum.FORWARD_ERROR:
                module(*sample.forward_input.args, **sample.forward_input.kwargs)


# ---- the momentum layers against the float64 reference ----------------------------------------
MOMENTUM = dict(mu=0.7, s=0.4)


def _reference(
    layer: kernels.RecurrentBase, params: dict, x: torch.Tensor, lengths: torch.Tensor, hx
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The stack of :func:`naive_layer` calls (float64): ``x (B, T, I)`` batch first, ``lengths (B,)``,
    ``hx`` None or the plain cell's states ``(L*D, B, ·)``; returns the padded output and the final
    states ``[h_n, (c_n,) v_n]``."""
    B, T, _ = x.shape
    D, L, H = layer.num_directions, layer.num_layers, layer.hidden_size
    P = getattr(layer, "proj_size", 0) or H
    G = kernels.cells.GATES[layer.mode] * H
    lstm = layer.mode == "lstm"
    if hx is None:
        hx = (x.new_zeros(L * D, B, P),) + ((x.new_zeros(L * D, B, H),) if lstm else ())
    h0 = hx[0]
    c0 = hx[1] if lstm else None
    inp, finals = x, {"h": [], "c": [], "v": []}
    for layer_k in range(L):
        outs = []
        for d in range(D):
            k = layer_k * D + d
            sfx = f"_l{layer_k}" + ("_reverse" if d else "")

            def get(n, sfx=sfx):
                return params.get(n + sfx)

            out, (h, c, v) = naive_layer(
                layer.mode,
                inp,
                lengths,
                h0[k],
                c0[k] if lstm else None,
                x.new_zeros(B, G),
                get("weight_ih"),
                get("weight_hh"),
                get("bias_ih"),
                get("bias_hh"),
                mu=MOMENTUM["mu"],
                s=MOMENTUM["s"],
                reverse=bool(d),
                w_hr=get("weight_hr"),
            )
            outs.append(out)
            finals["h"].append(h), finals["c"].append(c), finals["v"].append(v)
        inp = torch.cat(outs, 2)
    states = [torch.stack(finals["h"])] + ([torch.stack(finals["c"])] if lstm else []) + [torch.stack(finals["v"])]
    return inp, states


MOMENTUM_CASES = [pytest.param(*p.values, "torch", id=p.id) for p in CASES if p.values[2]] + [
    pytest.param(*p.values, "triton", id=p.id + "-fused") for p in FUSED_CASES
]


@pytest.mark.parametrize("name,dtype,training,k,backend", MOMENTUM_CASES)
def test_momentum_same_as_reference(name, dtype, training, k, backend):
    """The module_db inputs through the momentum layer of the same family: outputs, states (``v_n``
    too) and gradients against the float64 step-by-step reference, on the torch fallback for every
    sample and on the fused kernels for the fused subset. (Training mode only: with ``dropout=0``
    eval computes the same, and the torch comparison covers both.)"""
    if backend == "triton":
        pytest.importorskip("triton")
    sample = _samples(name, dtype, training)[k]
    args, kwargs = sample.constructor_input.args, sample.constructor_input.kwargs
    torch.manual_seed(0)
    layer = getattr(kernels, "Momentum" + name)(*args, **kwargs, **MOMENTUM, backend=backend).to(dtype)
    layer.train(training)
    fwd = _fresh(sample.forward_input.args)
    leaves = [t for t in _tensors(fwd) if t.requires_grad]
    out, states = layer(*fwd)
    states = list(states)
    assert layer.last_backend[0] == backend, layer.last_backend

    # The reference, in float64 from the same values, on batch-first padded input.
    ref_leaves = [t.detach().double().requires_grad_() for t in leaves]
    params = {n: p.detach().double().requires_grad_() for n, p in layer.named_parameters()}
    ref_in = _rebuild(fwd, dict(zip(map(id, leaves), ref_leaves)))
    x, hx = ref_in[0], (ref_in[1] if len(ref_in) > 1 else None)
    batch_first = kwargs.get("batch_first", False)
    if isinstance(x, PackedSequence):
        x, lengths = pad_packed_sequence(x, batch_first=True)
        unbatched = False
    else:
        unbatched = x.dim() == 2
        x = x.unsqueeze(0) if unbatched else (x if batch_first else x.transpose(0, 1))
        lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
        if unbatched and hx is not None:
            hx = tuple(t.unsqueeze(1) for t in (hx if isinstance(hx, tuple) else (hx,)))
    if hx is not None and torch.is_tensor(hx):
        hx = (hx,)
    ref_out, ref_states = _reference(layer, params, x, lengths, hx)

    # Ours in the same batch-first padded layout.
    if isinstance(out, PackedSequence):
        out, _ = pad_packed_sequence(out, batch_first=True)
    elif unbatched:
        out = out.unsqueeze(0)
        states = [s.unsqueeze(1) for s in states]
    elif not batch_first:
        out = out.transpose(0, 1)
    assert len(states) == len(ref_states)
    got = [out] + states
    want = [ref_out] + ref_states
    got_grads = torch.autograd.grad(_weighted_sum(got), leaves + list(layer.parameters()))
    want_grads = torch.autograd.grad(_weighted_sum(want), ref_leaves + list(params.values()))
    tol = _tolerance(dtype)
    if dtype == torch.float32:  # float32 against float64
        tol = dict(atol=3e-5, rtol=1e-4)
    for a, b in zip(got + list(got_grads), want + list(want_grads)):
        torch.testing.assert_close(a.double(), b.detach(), **tol)


def _rebuild(obj, replace: dict):
    """``obj`` with each tensor replaced by ``replace[id(tensor)]`` (a PackedSequence by its data)."""
    if isinstance(obj, PackedSequence):
        return PackedSequence(_rebuild(obj.data, replace), obj.batch_sizes, obj.sorted_indices, obj.unsorted_indices)
    if torch.is_tensor(obj):
        return replace.get(id(obj), obj)
    return type(obj)(_rebuild(o, replace) for o in obj)
