"""Chunked forward passes of a trained model over a pool.

Every function here runs a `Model` over `[N, ...]` inputs in fixed-size
chunks (so memory follows the chunk, not the pool) and can skip the chunks
that hold no point of interest (`include_mask`: those points are ordered
first and only enough chunks to cover them run, with a traced trip count).

MC dropout comes in two kinds. *Consistent* (the default for acquisition):
pass k is one function ω_k applied to every point — each point is run as a
batch of one with the pass's key, so every point sees the same dropout
masks whatever the chunking or device count, as the joint predictives of
BatchBALD and EPIG require. *Per-point*: each chunk draws its own masks
(`fold_in(key, first row of the chunk)`), like a training forward pass; enough for scores
that only need each point's marginal.
"""

import jax

from jal import chunking
from jal import models


def forward(model: models.Model, variables: models.Variables, x: jax.Array,
            *, key: jax.Array | None = None,
            consistent: bool = True) -> models.Output:
  """One forward pass over a batch in evaluation mode.

  Args:
    model: the model.
    variables: its variables.
    x: [B, ...] inputs.
    key: dropout key, or None for the deterministic pass.
    consistent: with a key, every row sees the same dropout masks.

  Returns:
    The model's `Output` for the batch.
  """
  if key is None or not consistent:
    return model.apply(variables, x, key=key)
  one = lambda row: jax.tree.map(
      lambda y: y[0], model.apply(variables, row[None], key=key))
  out = jax.vmap(one)(x)
  return out._replace(state=variables.state)


def predict(model: models.Model, variables: models.Variables,
            images: jax.Array, *, chunk_size: int,
            key: jax.Array | None = None, consistent: bool = True,
            include_mask: jax.Array | None = None):
  """Logits and embeddings of every image, in fixed-size chunks.

  Args:
    model: the model.
    variables: its variables.
    images: [N, ...] inputs.
    chunk_size: rows per forward pass.
    key: if given, dropout is on (one MC-dropout pass over the pool).
    consistent: see the module docstring.
    include_mask: [N] bool; if given, only the chunks covering these rows
      run; other rows are zero unless they shared a chunk.

  Returns:
    logits [N, C] float32 and embeddings [N, D] float32.
  """

  def run(rows):
    chunk_key = key
    if key is not None and not consistent:
      # A chunk's first row is distinct for every chunk: its own masks.
      chunk_key = jax.random.fold_in(key, rows[0])
    out = forward(model, variables, images[rows], key=chunk_key,
                  consistent=consistent)
    return out.logits, out.embedding

  return chunking.map_masked(run, images.shape[0], chunk_size, include_mask)


def features(model: models.Model, variables: models.Variables,
             images: jax.Array, *, chunk_size: int,
             include_mask: jax.Array | None = None) -> tuple:
  """The model's intermediate `features` for every image (eval mode).

  Returns:
    A tuple of [N, ...] arrays, one per exposed feature; empty if the model
    exposes none.
  """
  return chunking.map_masked(
      lambda rows: model.apply(variables, images[rows]).features,
      images.shape[0], chunk_size, include_mask)


def logits_fn(model: models.Model, variables: models.Variables):
  """`f(x [B, ...]) -> logits [B, C]`, the trained model in eval mode.

  A strategy differentiates it with respect to its inputs (`jax.grad`,
  `jax.jacrev`) and maps it over pool chunks with `chunking.map_masked`.
  """
  return lambda x: model.apply(variables, x).logits
