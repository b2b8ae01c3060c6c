"""Drop-in recurrent layers: ``torch.nn.RNN/GRU/LSTM``'s constructor, parameter names and forward,
plus momentum variants and a ``backend`` switch.

Momentum layers return their momentum state too: ``MomentumRNN``/``MomentumGRU`` give
``output, (h_n, v_n)`` and ``MomentumLSTM`` gives ``output, (h_n, c_n, v_n)``, with ``v_n`` of shape
``(num_layers * num_directions, batch, gates * hidden_size)``. They accept the same tuple as ``hx``,
or the plain cell's ``hx`` (then ``v_0 = 0``).
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import warnings
from collections.abc import Sequence
from typing import Any, Optional, cast

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.rnn import PackedSequence

from . import cells
from .cells import GATES
from .torch_fallback import NativeStack, layered, native_packed, native_stack

log = logging.getLogger("namemodels.kernels")
BACKENDS = ("auto", "torch", "triton")
# w_ih, w_hh, b_ih, b_hh of one layer stacked over its directions (Optional: evaluated at runtime on 3.9)
_Stacked = tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]


class RecurrentInputError(ValueError, RuntimeError):
    """A wrong input or state shape. torch.nn raises RuntimeError for these; this package raised
    ValueError before it followed torch, so the error is both."""


def _autocast_on() -> bool:
    """Whether autocast is on for any device (torch.nn lets dtypes differ then)."""
    any_on = getattr(torch._C, "_is_any_autocast_enabled", None)  # torch >= 2.4
    return bool(any_on()) if any_on is not None else torch.is_autocast_enabled()


class _UnitInterval(nn.Module):
    def forward(self, raw: Tensor) -> Tensor:
        return torch.sigmoid(raw)

    def right_inverse(self, value: Tensor) -> Tensor:
        return torch.logit(value.clamp(1e-6, 1 - 1e-6))


class _Positive(nn.Module):
    def forward(self, raw: Tensor) -> Tensor:
        return nn.functional.softplus(raw)

    def right_inverse(self, value: Tensor) -> Tensor:
        return value.clamp(min=1e-6).expm1().log()


class RecurrentBase(nn.Module):
    """What every layer shares, as ``torch.nn.RNNBase`` does: parameters with torch.nn's names and
    shapes, input and state checks, and the choice of the path that computes a call.

    A subclass sets ``mode`` (its equations, a key of :data:`namemodels.kernels.cells.MODES`) and
    ``momentum``. :meth:`forward` takes one of three paths (``last_backend`` says which and why):

    * the native stack -- ``backend`` torch (or auto on the CPU) and no momentum: torch's own
      multi-layer kernel (``_VF.lstm`` ...), on a packed batch when lengths differ;
    * per layer on torch -- momentum cells: :func:`namemodels.kernels.torch_fallback.layered`
      for each layer and direction (momentum folded into the native kernel's input);
    * fused -- ``backend`` triton (or auto on CUDA): :mod:`namemodels.kernels.fused_recurrent`.
    """

    mode = "lstm"
    momentum = False
    proj_size = 0  # also what a layer pickled before proj_size existed reads

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        backend: str = "auto",
        mu: float = 0.6,
        s: float = 0.6,
        learn_momentum: bool = False,
        proj_size: int | None = None,
    ) -> None:
        super().__init__()
        if proj_size is not None and self.mode != "lstm":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        proj_size = 0 if proj_size is None else proj_size
        # torch.nn.RNNBase's checks, in its order, with its exception types and messages.
        if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability of an "
                f"element being zeroed, got {dropout!r}"
            )
        for name, flag in (("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} should be of type bool, got: {type(flag).__name__}")
        # torch.nn.RNNBase's own checks and messages, word for word: code written against torch.nn catches
        # them (the package's models check their sizes by namemodels.config.size_problem instead)
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
            if value <= 0:
                raise ValueError(f"{name} must be greater than zero, got {value}")
        if not isinstance(proj_size, int) or isinstance(proj_size, bool):
            raise TypeError(f"proj_size should be of type int, got: {type(proj_size).__name__}")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                stacklevel=2,
            )
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.backend = bidirectional, backend
        self.proj_size = proj_size
        self.last_backend: tuple[str, str] = ("", "not run yet")
        gate_size = GATES[self.mode] * hidden_size
        out_size = self.out_size  # the width of h
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self._flat_weights_names: list[str] = []
        for layer in range(num_layers):
            for direction in range(self.num_directions):
                layer_in = input_size if layer == 0 else out_size * self.num_directions
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                shapes: list[tuple[str, tuple[int, ...]]] = [
                    ("weight_ih", (gate_size, layer_in)),
                    ("weight_hh", (gate_size, out_size)),
                ]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size:
                    shapes.append(("weight_hr", (proj_size, hidden_size)))
                for name, shape in shapes:
                    self.register_parameter(name + sfx, nn.Parameter(torch.empty(shape, **factory)))
                    self._flat_weights_names.append(name + sfx)
        if self.momentum:
            for name, number in (("mu", mu), ("s", s)):
                if not isinstance(number, (int, float)) or not math.isfinite(number):
                    raise ValueError(f"{name} must be a finite number, got {number!r}")
            if not 0.0 <= mu < 1.0 or s < 0.0:
                raise ValueError(f"momentum needs 0 <= mu < 1 and s >= 0, got mu={mu}, s={s}")
            self.learn_momentum = learn_momentum
            self.mu: Tensor | float  # a parametrized Parameter when learned, else a float
            self.s: Tensor | float
            if learn_momentum:
                self.mu = nn.Parameter(torch.tensor(float(mu), **factory))
                self.s = nn.Parameter(torch.tensor(float(s), **factory))
                parametrize.register_parametrization(self, "mu", _UnitInterval())
                parametrize.register_parametrization(self, "s", _Positive())
            else:
                self.mu, self.s = float(mu), float(s)
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _flat_weights(self) -> list[Tensor]:
        return [getattr(self, n) for n in self._flat_weights_names]

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for name in self._flat_weights_names:
            nn.init.uniform_(getattr(self, name), -stdv, stdv)

    @property
    def out_size(self) -> int:
        """The width of ``h`` (and of each direction's output): ``proj_size`` if set, else ``hidden_size``."""
        return self.proj_size or self.hidden_size

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for key, default in (("bias", True), ("batch_first", False), ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, key) != default:
                s += f", {key}={getattr(self, key)}"
        if self.mode == "rnn_relu":  # torch.nn leaves the default 'tanh' out
            s += ", nonlinearity='relu'"
        if self.momentum:
            s += f", mu={float(self.mu):.3g}, s={float(self.s):.3g}" + (
                ", learn_momentum=True" if self.learn_momentum else ""
            )
        return s + (f", backend={self.backend!r}" if self.backend != "auto" else "")

    def _layer_weights(self, layer: int, direction: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        sfx = f"_l{layer}" + ("_reverse" if direction else "")
        get = lambda n: getattr(self, n + sfx)  # noqa: E731
        return (
            get("weight_ih"),
            get("weight_hh"),
            (get("bias_ih") if self.bias else None),
            (get("bias_hh") if self.bias else None),
        )

    def _layer_proj(self, layer: int, direction: int) -> Tensor | None:
        """``weight_hr (proj_size, hidden_size)`` of one layer and direction, or None without projections."""
        if not self.proj_size:
            return None
        return getattr(self, f"weight_hr_l{layer}" + ("_reverse" if direction else ""))

    # ---- input handling ---------------------------------------------------------------------
    def _check_input(self, x: Tensor) -> None:
        if not torch.is_tensor(x):
            raise ValueError(f"input must be a tensor or PackedSequence, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(
                f"input must be a floating-point tensor, got dtype {x.dtype}; "
                "cast it with .float() (token ids go through an nn.Embedding first)"
            )
        weight = self.weight_ih_l0
        if x.dtype != weight.dtype and not _autocast_on():
            raise ValueError(
                f"RNN input dtype ({x.dtype}) does not match weight dtype ({weight.dtype}). "
                f"Convert input: input.to({weight.dtype}), or convert model: model.to({x.dtype})"
            )
        if x.dim() not in (2, 3):
            raise ValueError(
                f"input must have 3 dimensions {self._layout()} (or 2 unbatched), got shape {tuple(x.shape)}"
            )
        if x.shape[-1] != self.input_size:
            raise RecurrentInputError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {x.shape[-1]} "
                f"(input feature size must be input_size={self.input_size}, got shape {tuple(x.shape)} "
                f"(last dimension {x.shape[-1]}))"
            )
        if x.shape[-2 if x.dim() == 2 else (1 if self.batch_first else 0)] == 0:
            raise ValueError(f"input has zero time steps (shape {tuple(x.shape)}); sequences need at least one step")

    def _layout(self) -> str:
        return "(batch, seq, feature)" if self.batch_first else "(seq, batch, feature)"

    def _state_shapes(self, B: int) -> list[tuple[str, tuple[int, ...]]]:
        LD, H = self.num_layers * self.num_directions, self.hidden_size
        shapes: list[tuple[str, tuple[int, ...]]] = [("h_0", (LD, B, self.out_size))]
        if self.mode == "lstm":
            shapes.append(("c_0", (LD, B, H)))
        if self.momentum:
            shapes.append(("v_0", (LD, B, GATES[self.mode] * H)))
        return shapes

    def _split_hx(
        self, hx: Tensor | Sequence[Tensor] | None, B: int, x: Tensor, zeros: bool = True
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """``(h_0, c_0, v_0)`` from ``hx``; absent states are zeros, or None with ``zeros=False``."""
        shapes = self._state_shapes(B)
        if hx is None:
            if not zeros:
                return None, None, None
            parts = [x.new_zeros(shape) for _, shape in shapes[: 2 if self.mode == "lstm" else 1]]
        else:
            parts = [hx] if torch.is_tensor(hx) else list(hx)
        required = 2 if self.mode == "lstm" else 1
        if len(parts) not in (required, len(shapes)):
            names = ", ".join(n for n, _ in shapes)
            raise RecurrentInputError(f"hx must hold ({names}) for {type(self).__name__}, got {len(parts)} tensors")
        for part, (name, shape) in zip(parts, shapes):
            if not torch.is_tensor(part) or tuple(part.shape) != shape:
                got = tuple(part.shape) if torch.is_tensor(part) else type(part).__name__
                raise RecurrentInputError(
                    f"Expected hidden size {shape}, got {list(got) if torch.is_tensor(part) else got}: "
                    f"{name} must have shape {shape} (num_layers*num_directions, batch, size), got {got}"
                )
            if part.dtype != x.dtype or part.device != x.device:
                raise ValueError(
                    f"{name} must match the input's dtype/device {x.dtype}/{x.device}, got {part.dtype}/{part.device}"
                )
        h0 = parts[0]
        c0 = parts[1] if self.mode == "lstm" else None
        v0 = parts[-1] if self.momentum and len(parts) == len(shapes) else None
        return h0, c0, v0

    def _check_lengths(self, lengths: Tensor | Sequence[int], B: int, T: int, x: Tensor, fused: bool) -> Tensor | None:
        """Validate ``lengths`` and put it where the chosen path reads it. Values are checked only
        when they are on the CPU (reading a device tensor would wait for the device) and not under
        torch.compile; the fused kernels clamp them to [0, T]. The fused path gets an int64 tensor on
        the input's device, or None when every sequence is full (nothing to mask); the torch path
        gets CPU lengths to pack with (on the device under torch.compile, which masks instead)."""
        lengths = torch.as_tensor(lengths)
        if lengths.dim() != 1 or lengths.shape[0] != B or lengths.is_floating_point():
            raise ValueError(
                f"lengths must be an integer tensor of shape ({B},), got {tuple(lengths.shape)} {lengths.dtype}"
            )
        compiling = torch.compiler.is_compiling()
        if lengths.device.type == "cpu" and not compiling and B:
            low, high = int(lengths.min()), int(lengths.max())
            if low < 1:
                raise ValueError(f"every sequence needs at least one step; got a length of {low}")
            if high > T:
                raise ValueError(f"a length of {high} exceeds the padded input's {T} time steps")
            if fused and low == T:
                return None
        if fused:
            # One step: every valid length is 1 = T. Otherwise an asynchronous copy, no host wait.
            return None if T == 1 else lengths.to(x.device, torch.int64, non_blocking=True)
        return lengths.to(x.device if compiling else "cpu", torch.long)

    def _unpack(self, packed: PackedSequence, fused: bool) -> tuple[Tensor, Tensor]:
        """A PackedSequence as a batch-first padded tensor in the original order and its lengths,
        without reading device memory on the host (torch's pad_packed_sequence does, for lengths)."""
        bs = packed.batch_sizes
        x, lens = torch._VF._pad_packed_sequence(packed.data, bs, True, 0.0, bs.size(0))
        idx = packed.unsorted_indices
        if idx is None:
            return x, lens
        x = x.index_select(0, idx)
        if fused:
            return x, lens.to(x.device, non_blocking=True).index_select(0, idx)
        return x, lens.index_select(0, idx.cpu())

    def _repack(self, out: Tensor, packed: PackedSequence) -> PackedSequence:
        """The padded output in the original order, packed like the input (sorted lengths on the host,
        the reordering on the device)."""
        bs = packed.batch_sizes
        lens_sorted = (bs.unsqueeze(1) > torch.arange(int(bs[0]))).sum(0)  # CPU only
        idx = packed.sorted_indices
        data, _ = torch._VF._pack_padded_sequence(out if idx is None else out.index_select(0, idx), lens_sorted, True)
        return PackedSequence(data, bs, packed.sorted_indices, packed.unsorted_indices)

    # ---- forward -----------------------------------------------------------------------------
    def forward(
        self,
        input: Tensor | PackedSequence,
        hx: Tensor | tuple[Tensor, ...] | None = None,
        lengths: Tensor | None = None,
    ) -> tuple[Tensor | PackedSequence, Tensor | tuple[Tensor, ...]]:
        """``input``: padded tensor or PackedSequence; ``lengths`` (optional) marks valid steps of a
        padded batch, as an alternative to packing. Returns ``(output, h_n)`` like torch.nn
        (``(h_n, c_n)`` for LSTM, plus ``v_n`` for momentum layers)."""
        packed_input = input if isinstance(input, PackedSequence) else None  # None for a padded tensor
        unbatched = False
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("pass lengths only with a padded tensor, not with a PackedSequence")
            x = input.data
        else:
            self._check_input(input)
            unbatched = input.dim() == 2
            x = input.unsqueeze(0) if unbatched else (input if self.batch_first else input.transpose(0, 1))
            if unbatched and hx is not None:
                hx = hx.unsqueeze(1) if torch.is_tensor(hx) else tuple(t.unsqueeze(1) for t in hx)
        backend, why = self._choose_backend(x)
        self.__dict__["last_backend"] = (backend, why)  # a plain attribute: skip nn.Module.__setattr__ per call
        if os.environ.get("NAMEMODELS_SHOW_BACKEND"):
            log.warning("%s: backend=%s (%s)", type(self).__name__, backend, why)
        fused = backend == "triton"
        if packed_input is not None:
            x, lengths = self._unpack(packed_input, fused)
            self._check_input(x)
        B, T, _ = x.shape
        if lengths is not None:
            lengths = self._check_lengths(lengths, B, T, x, fused)
        h0, c0, v0 = self._split_hx(hx, B, x, zeros=not fused)

        native = backend == "torch" and not self.momentum and not torch.compiler.is_compiling()
        if native and packed_input is not None:
            assert h0 is not None  # _split_hx made the zeros (zeros=not fused)
            out, states = self._native_stack_packed(packed_input, h0, c0)
            self._check_finite(x, states)  # only rnn_relu is checked, and its states are h_n alone
            return out, states
        if fused:
            out, (h_n, c_n, v_n) = self._fused_stack(x, lengths, h0, c0, v0)
        elif native:
            out, (h_n, c_n, v_n) = self._native_stack(x, lengths, h0, c0)
        else:
            out, (h_n, c_n, v_n) = self._layered(x, lengths, h0, c0, v0)
        self._check_finite(x, h_n)
        if packed_input is not None:
            out = self._repack(out, packed_input)
        elif unbatched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        finals = [h_n] + ([c_n] if self.mode == "lstm" else []) + ([v_n] if self.momentum else [])
        if unbatched:
            finals = [t.squeeze(1) for t in finals]
        return out, (finals[0] if len(finals) == 1 else tuple(finals))

    def _choose_backend(self, x: Tensor) -> tuple[str, str]:
        if self.backend == "torch":
            return "torch", "backend='torch' requested"
        if self.proj_size:
            why = f"proj_size={self.proj_size}: the fused kernels have no LSTM projection (weight_hr)"
            if self.backend == "triton":
                raise ValueError(f"backend='triton' cannot run this call: {why}; use backend='auto' or 'torch'")
            return "torch", why + "; the torch fallback runs"
        from . import dispatch

        ok, why = dispatch.triton_supported(self, x, explicit=self.backend == "triton")
        if self.backend == "triton":
            if not ok:
                raise ValueError(f"backend='triton' cannot run this call: {why}")
            return "triton", why
        if not ok and x.is_cuda:
            self._warn_fallback(why)
        return ("triton", why) if ok else ("torch", why)

    def _warn_fallback(self, why: str) -> None:
        """A CUDA input asks for the fused kernels; when they cannot run it (``--hidden 512``, a dtype
        they lack, no Triton) the torch path (cuDNN) runs instead, and that is logged once per layer
        and reason rather than left to ``last_backend``."""
        said = self.__dict__.setdefault("_fallback_warned", set())
        if why not in said:
            said.add(why)
            log.warning(
                "%s on CUDA: the fused kernels cannot run this layer (%s); the torch fallback (cuDNN) runs",
                type(self).__name__,
                why,
            )

    def _native_hx(self, h0: Tensor, c0: Tensor | None) -> Tensor | tuple[Tensor, Tensor | None]:
        return (h0, c0) if self.mode == "lstm" else h0

    def _native_stack(self, x, lengths, h0, c0):
        out, states = native_stack(self.mode, x, lengths, self._native_hx(h0, c0), self._native_args())
        return out, ((states[0], states[1], None) if self.mode == "lstm" else (states, None, None))

    def _native_stack_packed(
        self, packed: PackedSequence, h0: Tensor, c0: Tensor | None
    ) -> tuple[PackedSequence, Tensor | tuple[Tensor, ...]]:
        return native_packed(self.mode, packed, self._native_hx(h0, c0), self._native_args())

    def _native_args(self) -> NativeStack:
        """The stack's settings as torch's native kernels take them, after ``x`` and ``hx``."""
        return NativeStack(
            self._flat_weights, self.bias, self.num_layers, self.dropout, self.training, self.bidirectional
        )

    def _layered(self, x, lengths, h0, c0, v0):
        """Torch path, one layer and direction at a time (momentum cells; every cell under
        torch.compile): :func:`namemodels.kernels.torch_fallback.layered`, the form the TorchScript
        and torch.export files run too."""
        mu = s = None
        if self.momentum:  # 0-d tensors, the form TorchScript types: learned ones as they are
            # (differentiable), constants in float64, so that no precision is lost before x's dtype
            mu, s = (torch.as_tensor(v, dtype=None if torch.is_tensor(v) else torch.float64) for v in (self.mu, self.s))
        out, h_n, c_n, v_n = layered(
            self.mode,
            x,
            lengths,
            h0,
            c0,
            v0,
            self._flat_weights,
            self.bias,
            self.num_layers,
            self.num_directions,
            mu,
            s,
            self.dropout,
            self.training,
        )
        return out, (h_n, c_n, v_n)

    # ---- the fused path ----------------------------------------------------------------------
    def _fused_stack(self, x, lengths, h0, c0, v0):
        """Every layer on the fused kernels: per layer one input-projection matmul and one launch for
        all directions (:func:`namemodels.kernels.ops.fused_layer`)."""
        from .ops import fused_layer

        D = self.num_directions
        mus = self._momentum_scalars(x) if self.momentum else None
        pick = lambda t, k: t[k] if t is not None else None  # noqa: E731
        hs, cs, vs = [], [], []
        inp = x.contiguous()
        for layer in range(self.num_layers):
            k = slice(layer * D, layer * D + D)
            out, h, c, v = fused_layer(
                self.mode, inp, lengths, pick(h0, k), pick(c0, k), pick(v0, k), *self._stacked_weights(layer), mus
            )
            hs.append(h)
            cs.append(c)
            vs.append(v)
            inp = out
            if self.dropout and self.training and layer < self.num_layers - 1:
                inp = nn.functional.dropout(inp, self.dropout, True)
        cat = lambda ts: None if ts[0] is None else (ts[0] if len(ts) == 1 else torch.cat(ts, 0))  # noqa: E731
        return inp, (cat(hs), cat(cs), cat(vs))

    def _stacked_weights(self, layer: int) -> _Stacked:
        """``w_ih (D, G, I), w_hh (D, G, H), b_ih, b_hh (D, G)``: layer ``layer``'s weights stacked over
        directions. Without autograd (inference) the stacks are cached per weight version, so an
        inference call copies nothing; in-place updates (optimizers, load_state_dict) bump the version.
        Not cached while a CUDA graph is being captured: the capture then records the copies."""
        per_dir = [self._layer_weights(layer, d) for d in range(self.num_directions)]
        if len(per_dir) == 1:
            return cast(_Stacked, tuple(w.unsqueeze(0) if w is not None else None for w in per_dir[0]))
        flat = [w for ws in per_dir for w in ws if w is not None]
        cacheable = (
            not torch.is_grad_enabled()
            and not torch.compiler.is_compiling()
            and not (flat[0].is_cuda and torch.cuda.is_current_stream_capturing())
        )
        if cacheable:
            # The same tensors (held here, so no new one can take an old one's place), at the same
            # address, unchanged since (version counter).
            key = tuple((w.data_ptr(), w._version) for w in flat)
            hit = self.__dict__.setdefault("_stacked_cache", {}).get(layer)
            if hit is not None and hit[1] == key and all(a is b for a, b in zip(hit[0], flat)):
                return hit[2]
        stacked = tuple(torch.stack(ws) if ws[0] is not None else None for ws in zip(*per_dir))
        if cacheable:
            self.__dict__["_stacked_cache"][layer] = (tuple(flat), key, stacked)
        return cast(_Stacked, stacked)

    def _momentum_scalars(self, x: Tensor) -> Tensor:
        """``[mu, s]`` as a (2,) fp32 tensor on the input's device: made once per value for constant
        momentum (no copy per call), differentiable for learnable momentum."""
        if self.learn_momentum:
            return torch.stack([cast(Tensor, self.mu), cast(Tensor, self.s)]).float()  # Parameters when learned
        if torch.compiler.is_compiling():
            return torch.tensor([float(self.mu), float(self.s)], dtype=torch.float32, device=x.device)
        key = (x.device, float(self.mu), float(self.s))
        cache = self.__dict__.setdefault("_mus_cache", {})
        if key not in cache:
            cache[key] = torch.tensor(key[1:], dtype=torch.float32, device=x.device)
        return cache[key]

    def _check_finite(self, x: Tensor, h_n: Tensor | tuple[Tensor, ...]) -> None:
        # Only the ReLU recurrence is unbounded (tanh, GRU and LSTM states stay in [-1, 1]), so only it
        # can overflow from finite inputs. An overflowed state carries on to the later steps: ReLU keeps
        # NaN and +inf, and an inf unit drives every unit it has a positive weight into to +inf (only a
        # unit whose outgoing weights are all negative could be zeroed again). So each sequence's final
        # state in every layer, h_n, shows it; one sum over h_n clears the usual case, and the full scans
        # run only when that sum is not finite.
        # The check reads h_n on the host: skipped on CUDA (it would wait for the device) and under
        # torch.compile.
        if (
            self.mode != "rnn_relu"
            or not isinstance(h_n, Tensor)  # a tuple holds an LSTM's states, not checked
            or h_n.is_cuda
            or torch.compiler.is_compiling()
            or math.isfinite(float(h_n.detach().sum()))
        ):
            return
        if not bool(torch.isfinite(h_n).all()) and bool(torch.isfinite(x).all()):
            raise FloatingPointError(
                f"{type(self).__name__} produced non-finite outputs from finite inputs (the state overflowed; "
                "with nonlinearity='relu' lower the learning rate, clip gradients or use tanh)"
            )


def _pop_positional(
    args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any
) -> tuple[tuple[Any, ...], Any]:
    """torch.nn.RNN and torch.nn.LSTM take one parameter more than :class:`RecurrentBase` among the
    positional ones (RNN's ``nonlinearity`` 4th, LSTM's ``proj_size`` 8th): ``args`` without it, and
    its value, given by position or as keyword ``name`` (taken out of ``kwargs``), else ``default``.
    Both at once is Python's own TypeError, as torch.nn raises it."""
    if len(args) <= index:
        return args, kwargs.pop(name, default)
    if name in kwargs:
        raise TypeError(f"__init__() got multiple values for argument '{name}'")
    return args[:index] + args[index + 1 :], args[index]


# The sections every layer's docstring shares (torch.nn's layout: equations, Args, Inputs, Outputs,
# Attributes); :func:`_documented` appends them to each class's own summary and equations.
_ARGS_DOC = """
    Args:
        input_size: features of ``x_t``.
        hidden_size: features of ``h_t``.
        num_layers: stacked layers; layer ``k > 0`` reads layer ``k - 1``'s outputs. Default 1.
        bias: whether the layers have ``b_ih`` and ``b_hh``. Default True.
        batch_first: ``(N, L, H_in)`` instead of ``(L, N, H_in)`` input and output. Default False.
        dropout: dropout on the outputs of every layer but the last. Default 0.
        bidirectional: add a reverse direction that reads each sequence from its own end. Default False.
        backend: ``"auto"`` (the fused Triton kernels for CUDA tensors, native torch kernels
            otherwise), ``"torch"`` or ``"triton"``. Keyword only."""

_PROJ_DOC = """
        proj_size: with ``P = proj_size > 0``, an LSTM with projections: ``h_t = W_hr (o_t * tanh(c_t))``,
            ``h`` of ``P`` features, ``c`` of ``hidden_size`` (``0 <= P < hidden_size``). Default 0."""

_NONLINEARITY_DOC = """
        nonlinearity: ``'tanh'`` or ``'relu'``. Default ``'tanh'``."""

_MOMENTUM_DOC = """
        mu, s: momentum coefficient and step size (keyword only; defaults 0.6, 0.6; ``0 <= mu < 1``,
            ``s >= 0``). ``mu = 0, s = 1`` gives the plain cell.
        learn_momentum: make ``mu`` and ``s`` parameters (``mu`` kept in (0, 1) by a sigmoid, ``s > 0``
            by a softplus). Default False."""

_SHAPES_DOC = """
    Inputs: input, hx, lengths
        * **input**: ``(L, N, H_in)`` (``(N, L, H_in)`` with ``batch_first=True``, ``(L, H_in)``
          unbatched), or a :class:`~torch.nn.utils.rnn.PackedSequence`.
        * **hx**: the initial state {hx}; zeros when omitted.
        * **lengths**: optional ``(N,)`` integer tensor of valid steps per sequence of a padded
          ``input`` (instead of packing), on the CPU or on the input's device.

    Outputs: output, h_n
        * **output**: ``(L, N, D * H_out)`` (batch first, unbatched or packed like the input); zero at
          padded steps.
        * **h_n**: the final state {hn}, taken at each sequence's own last step.

    ``N`` is the batch, ``L`` the time steps, ``D`` 2 if bidirectional else 1, ``H_cell`` hidden_size,
    ``H_out`` {hout} and ``G = {gates} * H_cell``; states are ``(num_layers * D, N, size)``
    (``(num_layers * D, size)`` unbatched), indexed ``layer * D + direction``.

    Attributes:
        weight_ih_l[k][_reverse]: ``(G, H_in)`` for ``k = 0``, else ``(G, D * H_out)``; row blocks
            {layout}, each ``H_cell`` rows.
        weight_hh_l[k][_reverse]: ``(G, H_out)``, the same row blocks.
        bias_ih_l[k][_reverse], bias_hh_l[k][_reverse]: ``(G,)`` (absent with ``bias=False``).{extra}
        All initialised from ``U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))`` as in torch.nn.
"""


def _documented(cls):
    """Append the shared Args / Inputs / Outputs / Attributes sections to a layer's docstring."""
    spec = cells.MODES[cls.mode]
    lstm = spec.name == "lstm"
    hx = "``(h_0, c_0)``" if lstm else "``h_0``"
    hn = "``(h_n, c_n)``" if lstm else "``h_n``"
    args, extra, hout = _ARGS_DOC, "", "hidden_size"
    if lstm:
        args += _PROJ_DOC
        hout = "proj_size if it is > 0, else hidden_size (``h`` has ``H_out`` features, ``c`` ``H_cell``)"
        extra = "\n        weight_hr_l[k][_reverse]: ``(proj_size, H_cell)``, only with ``proj_size > 0``."
    if cls.mode.startswith("rnn_"):
        args += _NONLINEARITY_DOC
    if cls.momentum:
        inner = hx.strip("`()")
        hx = f"``({inner}, v_0)``, or\n          the plain cell's {hx} (then ``v_0 = 0``)"
        hn = f"``({hn.strip('`()')}, v_n)``\n          (``v`` of size ``G``)"
        args += _MOMENTUM_DOC
        extra += (
            "\n        mu, s: floats, or with ``learn_momentum=True`` parametrized scalars\n"
            "            (``parametrizations.mu.original``, ``parametrizations.s.original``)."
        )
    layout = ", ".join(f"``{g}``" for g in spec.gate_names) if spec.gates > 1 else "one block"
    cls.__doc__ = (
        cls.__doc__.rstrip()
        + "\n"
        + args
        + "\n"
        + _SHAPES_DOC.format(hx=hx, hn=hn, gates=spec.gates, layout=layout, extra=extra, hout=hout)
    )
    return cls


@_documented
class RNN(RecurrentBase):
    r"""Elman RNN with ``torch.nn.RNN``'s constructor, parameter names and forward.

    For each element of the input sequence each layer computes

    .. math::
        h_t = \tanh(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

    (``relu`` instead of ``tanh`` with ``nonlinearity='relu'``).
    """

    mode = "rnn_tanh"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        # torch.nn.RNN(input_size, hidden_size, num_layers, nonlinearity, bias, ...)
        args, nonlinearity = _pop_positional(args, kwargs, 3, "nonlinearity", "tanh")
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.mode = "rnn_" + nonlinearity
        super().__init__(*args, **kwargs)

    @property
    def nonlinearity(self) -> str:
        return self.mode[4:]


@_documented
class GRU(RecurrentBase):
    r"""GRU with ``torch.nn.GRU``'s equations, constructor, parameter names and forward.

    For each element of the input sequence each layer computes

    .. math::
        r_t = \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t = \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t = \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    (the reset gate multiplies the hidden-side product, as in torch.nn and cuDNN).
    """

    mode = "gru"


@_documented
class LSTM(RecurrentBase):
    r"""LSTM with ``torch.nn.LSTM``'s equations, constructor, parameter names and forward, ``proj_size``
    included.

    For each element of the input sequence each layer computes

    .. math::
        i_t = \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        f_t = \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t = \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t = \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t = f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t = o_t \odot \tanh(c_t)

    With ``proj_size = P > 0`` (an LSTM with projections, Sak et al. 2014, as in torch.nn) the output
    is projected, :math:`h_t = W_{hr} (o_t \odot \tanh(c_t))` with :math:`W_{hr}` of shape ``(P, H)``,
    so ``h_t``, the output and ``W_hh``'s columns have ``P`` features while ``c_t`` keeps ``H``. The
    projection runs on the torch path (``last_backend`` says so when the fused kernels were
    otherwise chosen). ONNX, TorchScript and pt2 export carry the projection (``namemodels.export``).
    """

    mode = "lstm"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # torch.nn.LSTM(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
        # proj_size, device, dtype)
        args, proj_size = _pop_positional(args, kwargs, 7, "proj_size", 0)
        super().__init__(*args, proj_size=proj_size, **kwargs)


_MOMENTUM_EQ = r"""
    Momentum (Nguyen et al., 2020, "MomentumRNN") replaces the input projection ``W_ih x_t + b_ih``
    by a running average of it, a state of width ``G`` per layer and direction:

    .. math::
        v_t = \mu v_{t-1} + s (W_{ih} x_t + b_{ih})

    and ``v_t`` takes its place in the equations of the plain cell."""


@_documented
class MomentumRNN(RNN):
    __doc__ = "Elman RNN (:class:`RNN`) with momentum on the input projection.\n" + _MOMENTUM_EQ
    momentum = True


@_documented
class MomentumGRU(GRU):
    __doc__ = "GRU (:class:`GRU`) with momentum on the input projection.\n" + _MOMENTUM_EQ
    momentum = True


@_documented
class MomentumLSTM(LSTM):
    __doc__ = "LSTM (:class:`LSTM`) with momentum on the input projection.\n" + _MOMENTUM_EQ
    momentum = True


CELLS = cells.CELLS


def make_layer(cell: str, input_size: int, hidden_size: int, **kwargs: Any) -> RecurrentBase:
    """Build a layer by cell name (one of :data:`namemodels.kernels.cells.CELLS`)."""
    spec = cells.cell(cell)
    if spec.layer in ("RNN", "MomentumRNN"):
        kwargs["nonlinearity"] = spec.mode[4:]
    return globals()[spec.layer](input_size, hidden_size, **kwargs)
