"""The one sampler: new names from any generator backend's ``step``, at a temperature, optionally
among the top-k characters. NumPy only; the predictor's ``generate`` and the study call it.

At each step, with ``l`` the model's next-character log-probabilities (``<pad>``, ``<bos>`` and
``<unk>`` excluded) and ``T`` the temperature::

    p_i = exp((l_i - max_j l_j) / T) / sum_k exp((l_k - max_j l_j) / T)    over the top-k i, else 0

and the next character is the first ``i`` whose cumulative probability exceeds one uniform draw
``u ~ U[0, 1)`` from the caller's ``numpy.random.Generator`` (one draw per name per step, so a seed
gives the same names on every backend whose log-probabilities agree).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..errors import UsageError

if TYPE_CHECKING:  # annotations only
    from ..tokenizer import CharTokenizer
    from .protocol import Backend

MAX_GENERATED = 32  # characters of a sampled name, prefix included
JOINERS = " '-"  # the marks inside names of the data (De campo, Ou-Yang, O'Boyle); the others end a name


def check_prefix(tokenizer: CharTokenizer, prefix: str) -> None:
    """Raise :class:`UsageError` unless ``prefix`` (as the tokenizer reads it) can begin a name the
    model generates, which the sampler then continues: each of its characters is one the model draws
    (its vocabulary, less the special tokens); it begins with a letter, as every name does (a prefix of
    spaces, ``-`` or ``'`` alone has no letters); and its other characters are letters or the marks that
    join parts of a name (space, hyphen, apostrophe). A comma, period or semicolon is in a surname
    model's vocabulary only because a few lines of its data end with one (``Lysansky,``); nothing follows
    it there, so a prefix that holds one asks for a continuation the model never saw."""
    if not prefix:
        return
    specials = set(getattr(tokenizer, "SPECIALS", ()))
    unknown = sorted({c for c in prefix if c not in tokenizer.stoi or c in specials})
    if unknown:
        raise UsageError(f"start prefix {prefix!r} has characters the model cannot generate: {''.join(unknown)!r}")
    if not any(c.isalpha() for c in prefix):
        raise UsageError(f"start prefix {prefix!r} has no letters: a name begins with a letter")
    if not prefix[0].isalpha():
        raise UsageError(f"start prefix {prefix!r} begins with {prefix[0]!r}: a name begins with a letter")
    enders = sorted({c for c in prefix if not c.isalpha() and c not in JOINERS})
    if enders:
        raise UsageError(
            f"start prefix {prefix!r} has {''.join(enders)!r}, which ends a name (only letters and the "
            f"marks that join parts of a name, {JOINERS!r}, can be continued): drop it"
        )


def next_tokens(
    logp: np.ndarray,
    rng: np.random.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
    banned: Sequence[int] = (),
) -> np.ndarray:
    """One token per row of ``logp (B, V)``, drawn as the module docstring says; ``(B,)`` int64.

    ``banned`` ids are never drawn. A tiny temperature is greedy (the likeliest token), never 0/0."""
    logits = logp.astype(np.float64)
    logits[:, list(banned)] = -np.inf
    if top_k is not None and top_k < logits.shape[1]:
        kth = np.partition(logits, -top_k, axis=1)[:, -top_k][:, None]
        logits = np.where(logits < kth, -np.inf, logits)
    # Shift the best to 0 before dividing: a tiny temperature then sends every other character to
    # -inf (overflow, silenced) and keeps the best at probability 1 -- greedy, never 0/0.
    logits -= logits.max(1, keepdims=True)
    with np.errstate(over="ignore"):
        logits /= temperature
    p = np.exp(logits)
    p /= p.sum(1, keepdims=True)
    return (p.cumsum(1) > rng.random((len(p), 1))).argmax(1).astype(np.int64)


def sample(
    backend: Backend,
    tokenizer: CharTokenizer,
    n: int,
    rng: np.random.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
    prefix: str = "",
    category: np.ndarray | None = None,
    max_len: int = MAX_GENERATED,
    check: Callable[[np.ndarray], None] | None = None,
) -> list[list[int]]:
    """The token ids of ``n`` names drawn from ``backend`` (``prefix`` included, ``<eos>`` not).

    Each name reads ``<bos>`` and ``prefix``, then draws :func:`next_tokens` until it draws ``<eos>``
    or has ``max_len`` characters; a ``prefix`` that cannot begin a generated name raises
    :class:`UsageError` (:func:`check_prefix`). ``category``: ``(n,)`` int64 for a conditioned model, else None.
    ``check(logp)`` sees each step's log-probabilities before they are used (the predictor's
    non-finite check). A name that ends at once is an empty list; the caller decides what to keep."""
    tok = tokenizer
    check_prefix(tok, tok.normalize(prefix))
    start = tok.encode(prefix)
    state = backend.initial_state(n)
    for t in [tok.bos_id] + start:
        logp, state = backend.step(np.full(n, t, dtype=np.int64), state, category)
    out = [list(start) for _ in range(n)]
    done = np.zeros(n, dtype=bool)
    banned = (tok.pad_id, tok.bos_id, tok.unk_id)
    for _ in range(max_len - len(start)):
        if check is not None:
            check(logp)
        nxt = next_tokens(logp, rng, temperature, top_k, banned)
        for i in np.flatnonzero(~done):
            if nxt[i] == tok.eos_id:
                done[i] = True
            else:
                out[i].append(int(nxt[i]))
        if done.all():
            break
        logp, state = backend.step(nxt, state, category)
    return out
