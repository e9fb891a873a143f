"""The model protocol, its wrappers, and the built-in models.

jal sees a model as two pure functions, bundled in a `Model`:

- `init(key, input_shape) -> Variables`, input_shape being (H, W, C) of one
  image (or (D,) of one feature vector);
- `apply(variables, x, *, key=None, train=False) -> Output`, where `Output`
  holds `logits [B, C]`, `embedding [B, D]` (the penultimate activations),
  `features` (a tuple of intermediate activations the model chooses to
  expose, possibly empty) and `state` (the non-trainable variables after the
  call: batch statistics updated when `train`, unchanged otherwise).

Dropout is active iff `key` is given, whatever `train` says, so MC dropout
works on every model; `train` switches batch norm to batch statistics.

A flax NNX module (`from_nnx`), a Linen module (`from_linen`) or a plain
function (`from_function`) becomes a `Model`; the built-in MLP, LeNet and
ResNet-18 (`get`) are NNX modules wrapped that way.
"""

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import linen
from flax import nnx

from jal import errors
from jal.models.cnn import BayesianCNN
from jal.models.cnn import GalCNN
from jal.models.cnn import LeNet
from jal.models.mlp import MLP
from jal.models.resnet import ResNet18


class Variables(NamedTuple):
  """A model's arrays: trainable `params`, non-trainable `state`."""
  params: Any
  state: Any = ()


class Output(NamedTuple):
  """What `Model.apply` returns."""
  logits: jax.Array
  embedding: jax.Array
  features: tuple = ()
  state: Any = ()


class Model(NamedTuple):
  """A model as a pair of pure functions (see the module docstring)."""
  init: Callable[[jax.Array, tuple[int, ...]], Variables]
  apply: Callable[..., Output]


def _as_output(result, state) -> Output:
  """Logits, `(logits, embedding)` or `(logits, embedding, features)`."""
  if not isinstance(result, (tuple, list)):
    result = (result,)
  if not 1 <= len(result) <= 3:
    raise errors.ConfigError(
        f'A model must return logits, (logits, embedding) or (logits, '
        f'embedding, features); got a tuple of {len(result)}.')
  logits = result[0]
  embedding = result[1] if len(result) > 1 else logits
  features = tuple(result[2]) if len(result) > 2 else ()
  return Output(logits, embedding, features, state)


def from_nnx(make: Callable[[tuple[int, ...], nnx.Rngs], nnx.Module]) -> Model:
  """Wraps an NNX module factory as a `Model`.

  Args:
    make: `make(input_shape, rngs) -> module`, the module's call being
      `module(x, *, train, dropout_key) -> logits | (logits, embedding[,
      features])`.

  Returns:
    The `Model`; its state is the module's `nnx.BatchStat` variables.
  """

  @functools.lru_cache(maxsize=None)
  def graphdef(input_shape):
    abstract = nnx.eval_shape(lambda: make(input_shape, nnx.Rngs(0)))
    return nnx.split(abstract, nnx.Param, nnx.BatchStat)[0]

  def init(key, input_shape):
    module = make(tuple(input_shape), nnx.Rngs(params=key))
    _, params, state = nnx.split(module, nnx.Param, nnx.BatchStat)
    return Variables(params, state)

  def apply(variables, x, *, key=None, train=False):
    # copy=True: merging eagerly must not alias the caller's arrays.
    module = nnx.merge(graphdef(tuple(x.shape[1:])), variables.params,
                       variables.state, copy=True)
    result = module(x, train=train, dropout_key=key)
    _, _, state = nnx.split(module, nnx.Param, nnx.BatchStat)
    return _as_output(result, state)

  return Model(init, apply)


def _accepts(fn: Callable, name: str) -> bool:
  parameters = inspect.signature(fn).parameters
  return name in parameters or any(
      p.kind == p.VAR_KEYWORD for p in parameters.values())


def from_linen(module: linen.Module) -> Model:
  """Wraps a Linen module as a `Model`.

  The module's `__call__(x, ...)` returns logits, `(logits, embedding)` or
  `(logits, embedding, features)`. If it takes `train`, it gets the `train`
  flag (batch norm: `use_running_average=not train`); if it takes
  `deterministic`, it gets `deterministic=key is None` (dropout, fed by the
  'dropout' RNG stream). Every collection other than 'params' (e.g.
  'batch_stats') is the model's state, mutable in training.
  """
  call = type(module).__call__
  kwargs = lambda train, key: {
      **({'train': train} if _accepts(call, 'train') else {}),
      **({'deterministic': key is None}
         if _accepts(call, 'deterministic') else {})}

  def init(key, input_shape):
    variables = module.init({'params': key, 'dropout': key},
                            jnp.zeros((1, *input_shape)),
                            **kwargs(False, None))
    variables = dict(variables)
    params = variables.pop('params')
    return Variables(params, variables)

  def apply(variables, x, *, key=None, train=False):
    rngs = {} if key is None else {'dropout': key}
    full = {'params': variables.params, **variables.state}
    if train and variables.state:
      result, state = module.apply(full, x, rngs=rngs, mutable=list(
          variables.state), **kwargs(train, key))
      state = dict(state)
    else:
      result = module.apply(full, x, rngs=rngs, **kwargs(train, key))
      state = variables.state
    return _as_output(result, state)

  return Model(init, apply)


def from_function(init_fn: Callable[[jax.Array, tuple[int, ...]], Any],
                  apply_fn: Callable[..., Any]) -> Model:
  """Wraps plain functions as a `Model` (no state).

  Args:
    init_fn: `init_fn(key, input_shape) -> params`, any pytree.
    apply_fn: `apply_fn(params, x) -> logits | (logits, embedding[,
      features])`; if it takes `key`, it gets the dropout key (None for a
      deterministic pass).
  """
  takes_key = _accepts(apply_fn, 'key')

  def init(key, input_shape):
    return Variables(init_fn(key, tuple(input_shape)), ())

  def apply(variables, x, *, key=None, train=False):
    del train
    result = (apply_fn(variables.params, x, key=key) if takes_key
              else apply_fn(variables.params, x))
    return _as_output(result, variables.state)

  return Model(init, apply)


NAMES = ('mlp', 'lenet', 'bayesian_cnn', 'gal_cnn', 'resnet18',
         'resnet18_imagenet_stem')


def get(name: str, num_classes: int, dropout_rate: float) -> Model:
  """The built-in model `name` as a `Model`.

  Args:
    name: one of `NAMES`.
    num_classes: number of output logits.
    dropout_rate: rate of every dropout layer (active only when `apply` gets
      a key).
  """
  def make(input_shape, rngs):
    height, width, channels = input_shape
    if name == 'mlp':
      return MLP(height * width * channels, num_classes,
                 dropout_rate=dropout_rate, rngs=rngs)
    if name == 'lenet':
      return LeNet(channels, num_classes, image_size=height,
                   dropout_rate=dropout_rate, rngs=rngs)
    if name == 'bayesian_cnn':
      return BayesianCNN(channels, num_classes, image_size=height,
                         dropout_rate=dropout_rate, rngs=rngs)
    if name == 'gal_cnn':
      return GalCNN(channels, num_classes, image_size=height,
                    dropout_rate=dropout_rate, rngs=rngs)
    stem = 'cifar' if name == 'resnet18' else 'imagenet'
    return ResNet18(channels, num_classes, stem=stem,
                    dropout_rate=dropout_rate, rngs=rngs)

  if name not in NAMES:
    raise errors.UnknownNameError(
        f'Unknown model {name!r}. Valid names: {", ".join(NAMES)}.')
  return from_nnx(make)
