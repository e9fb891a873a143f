"""The experiment config: its fields, their defaults, and their checks.

`default()` lists every field an experiment has; configs in `configs/` start
from it and change a few. `validate` raises a `jal.errors.ConfigError` naming
the field, its value and the allowed range, before data is loaded or a model
trained.
"""

import difflib
import importlib.util
import math
import os

import ml_collections
from ml_collections import config_dict

from jal import acquisition
from jal import errors
from jal import posterior

OPTIMIZERS = ('adam', 'sgd')
INITIAL_STRATEGIES = ('random', 'kcenter_vae')
# Far above any rate that trains (Adam's usual 1e-3, SGD's 0.1); a larger one
# is a typo (1e8 for 1e-8) and would train a model that scores every point
# alike.
MAX_LEARNING_RATE = 10.0

def default() -> ml_collections.ConfigDict:
  """Entropy sampling with an MLP on digits: about a minute on 2 CPU cores."""
  config = ml_collections.ConfigDict()
  # Data.
  config.dataset = 'digits'
  config.data_dir = config_dict.placeholder(str)  # else $JAL_DATA_DIR
  config.pool_size = config_dict.placeholder(int)  # first P training images
  config.seed = 0
  # Model and training.
  config.model = 'mlp'
  config.dropout_rate = 0.2
  config.optimizer = 'adam'  # or 'sgd'
  config.learning_rate = 1e-3
  config.momentum = 0.9  # sgd only
  config.weight_decay = 0.0
  config.batch_size = 32
  config.num_epochs = 30
  config.augment = False  # random crop (padding 4) and horizontal flip
  # > 0: early stopping (Kirsch et al. 2019's code): after every epoch the
  # model is scored on the validation set (config.validation_size > 0),
  # the best epoch's model is kept (validation accuracy, ties: the earlier
  # epoch) and training stops after this many epochs in a row without
  # improvement; num_epochs is then the most. 0: off.
  config.early_stopping_patience = 0
  # 0: an epoch is one pass over the training rows; > 0: an epoch takes at
  # least this many rows, cycling its shuffled order of the training rows
  # (BatchBALD's code: 5056 an epoch, whatever the labeled set's size).
  config.epoch_samples = 0
  config.warm_start = False  # else a fresh model every round
  config.train_loop = 'auto'  # 'python' | 'jit' | 'auto' (jit off CPU)
  config.eval_chunk = 1000
  # Acquisition.
  config.strategy = 'entropy'
  # Every registered strategy's hyperparameters with their defaults:
  # --config.hparams.power_bald.beta=2 sets one.
  config.hparams = hparam_defaults()
  # > 0: each query scores only this many unlabeled points, a fresh uniform
  # draw every round (Gal et al. 2017 score 2000); 0: the whole pool. For
  # strategies that read only predictions (log_probs, mc_log_probs).
  config.pool_subsample = 0
  # Source of the K stochastic predictions ('mc_log_probs') of every
  # Bayesian strategy: 'mc_dropout' | 'ensemble' | 'laplace' | 'bn_train'.
  config.posterior = 'mc_dropout'
  config.posterior_samples = 10  # K ('mc_dropout', 'laplace', 'bn_train')
  # One dropout mask per MC pass shared by every pool point (what joint
  # predictives need); False: per-point masks, like a training pass.
  config.consistent_dropout = True
  config.ensemble_size = 5  # M members trained at once ('ensemble')
  config.laplace_prior_precision = 1.0  # λ of the N(0, 1/λ) weight prior
  config.laplace_structure = 'full'  # 'full' | 'diag' GGN precision
  # > 0: that many initial labels per class (initial_size = this × C),
  # drawn with the pool's labels, as in Gal et al. (2017); 0: uniform.
  config.initial_per_class = 0
  # 'random' (uniform, or per class above) | 'kcenter_vae': SRAAL's Alg. 1,
  # greedy k-center on a VAE's latent means from a random seed set of
  # max(1, initial_size // 10) points (no labels read; see
  # jal.acquisition.sraal.kcenter_initial_set).
  config.initial_strategy = 'random'
  config.initial_size = 40
  config.query_size = 40
  config.num_rounds = 10
  # The simulated oracle (a run without an oracle of its own): with
  # probability oracle_noise its answer is a uniformly random other class;
  # or oracle_confusion, a [C, C] matrix (nested list or .npy path), row =
  # true class, a distribution over answers. Answers are drawn per pool item
  # from the seed (jal.oracle.noisy).
  config.oracle_noise = 0.0
  config.oracle_confusion = config_dict.placeholder(object)
  # What labels cost: None (1 a label), a list of C per-class costs (of the
  # answered class), or a .npy path of N per-item or C per-class costs.
  config.label_costs = config_dict.placeholder(object)
  # > 0: that many test examples (a fixed draw) become a labeled validation
  # set, held out of the test accuracy; the stopping rules that need labels
  # (target accuracy, plateau) read its accuracy.
  config.validation_size = 0
  config.stopping = stopping_defaults()
  return config


def stopping_defaults() -> ml_collections.ConfigDict:
  """The stopping criteria's parameters (`jal.stopping`)."""
  return ml_collections.ConfigDict(dict(
      # Labels (initial set included); None: the run's whole budget.
      budget=config_dict.placeholder(int),
      # Rounds of queries; None: config.num_rounds.
      max_rounds=config_dict.placeholder(int),
      # Validation accuracy to reach; None: the criterion is off.
      target_accuracy=config_dict.placeholder(float),
      # Validation accuracy moves less than plateau_delta (max − min) over
      # plateau_window rounds.
      plateau_delta=0.005,
      plateau_window=3,
      # Stabilizing predictions (Bloodgood & Vijay-Shanker 2009): the mean
      # Cohen's kappa between consecutive models' predictions on a stop set
      # of stop_set_size pool points (a fixed draw; the whole pool if
      # smaller; 0: off) over kappa_window rounds exceeds kappa.
      stop_set_size=2000,
      kappa=0.99,
      kappa_window=3,
  ))


def hparam_defaults() -> ml_collections.ConfigDict:
  """{strategy name: {hyperparameter: default}} for every registered one."""
  return ml_collections.ConfigDict({
      name: dict(acquisition.get(name).hparams)
      for name in acquisition.names()})


def from_file(path: str) -> ml_collections.ConfigDict:
  """The config that the file's `get_config()` returns.

  Lets a config file build on another: `from_file(os.path.join(
  os.path.dirname(__file__), 'mnist_deepal.py'))`.
  """
  spec = importlib.util.spec_from_file_location(
      os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _require(ok: bool, message: str) -> None:
  if not ok:
    raise errors.ConfigError(message)


def _positive_int(config, field: str) -> None:
  value = config[field]
  _require(_int_at_least(value, 1),
           f'config.{field} must be a positive integer, got {value!r}.')


def _int_at_least(value, lowest: int) -> bool:
  """`value` is an int (not a bool) >= `lowest`."""
  return (isinstance(value, int) and not isinstance(value, bool) and
          value >= lowest)


def _finite_number(value) -> bool:
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def _validate_optimizer(config) -> None:
  """Checks the optimizer's fields: a bad one would train a NaN model."""
  _require(config.optimizer in OPTIMIZERS,
           f'config.optimizer must be one of {", ".join(OPTIMIZERS)}, got '
           f'{config.optimizer!r}.')
  _require(_finite_number(config.learning_rate) and
           0 < config.learning_rate <= MAX_LEARNING_RATE,
           f'config.learning_rate must lie in (0, {MAX_LEARNING_RATE}], got '
           f'{config.learning_rate!r}.')
  _require(_finite_number(config.momentum) and 0 <= config.momentum < 1,
           f'config.momentum must lie in [0, 1), got {config.momentum!r}.')
  _require(_finite_number(config.weight_decay) and config.weight_decay >= 0,
           'config.weight_decay must be a finite number >= 0, got '
           f'{config.weight_decay!r}.')


def did_you_mean(name: str, known) -> str:
  """' (did you mean 'x'?)' for the closest of `known`, or ''."""
  close = difflib.get_close_matches(name, list(known), n=1)
  return f' (did you mean {close[0]!r}?)' if close else ''


def _check_field_names(config) -> None:
  """Refuses fields `default()` lacks (typos) and missing ones."""
  known = default()
  unknown = sorted(set(config) - set(known))
  _require(not unknown,
           f'config.{unknown[0] if unknown else ""} is not an experiment field'
           f'{did_you_mean(unknown[0], known) if unknown else ""}; see '
           'jal.config.default().')
  missing = sorted(set(known) - set(config))
  _require(not missing,
           f'config lacks {", ".join(missing)}: start it from '
           'jal.config.default().')
  wanted = set(known.stopping)
  stopping = set(config.stopping) if isinstance(
      config.stopping, (dict, ml_collections.ConfigDict)) else wanted
  unknown = sorted(stopping - wanted)
  _require(not unknown,
           f'config.stopping.{unknown[0] if unknown else ""} is not a stopping'
           f' parameter{did_you_mean(unknown[0], wanted) if unknown else ""}; '
           'see jal.config.stopping_defaults().')
  missing = sorted(wanted - stopping)
  _require(not missing,
           f'config.stopping lacks {", ".join(missing)}: start it from '
           'jal.config.stopping_defaults().')
  registered = acquisition.names()
  for name in config.hparams:
    _require(name in registered or name == config.strategy,
             f'config.hparams.{name} names no registered strategy'
             f'{did_you_mean(name, registered)} and is not config.strategy.')


def validate(config) -> None:
  """Checks fields that do not depend on the data."""
  _check_field_names(config)
  for field in ('initial_size', 'query_size', 'batch_size', 'num_epochs',
                'posterior_samples', 'eval_chunk'):
    _positive_int(config, field)
  _require(isinstance(config.num_rounds, int) and config.num_rounds >= 0,
           f'config.num_rounds must be an integer >= 0, got '
           f'{config.num_rounds!r}.')
  _require(config.pool_size is None or (isinstance(config.pool_size, int) and
                                        config.pool_size > 0),
           'config.pool_size must be None (the whole training split) or a '
           f'positive integer, got {config.pool_size!r}.')
  _require(isinstance(config.seed, int) and 0 <= config.seed < 2**32,
           f'config.seed must be an integer in [0, 2**32), got '
           f'{config.seed!r}.')
  _require(0.0 <= config.dropout_rate < 1.0,
           f'config.dropout_rate must lie in [0, 1), got {config.dropout_rate}.')
  _validate_optimizer(config)
  _validate_oracle(config)
  _validate_stopping(config)
  _require(config.posterior in posterior.names(),
           f'config.posterior must be one of {", ".join(posterior.names())}, '
           f'got {config.posterior!r}.')
  _positive_int(config, 'ensemble_size')
  _require(config.laplace_prior_precision > 0 and
           math.isfinite(config.laplace_prior_precision),
           'config.laplace_prior_precision must be positive, got '
           f'{config.laplace_prior_precision}.')
  _require(config.laplace_structure in ('full', 'diag'),
           "config.laplace_structure must be 'full' or 'diag', got "
           f'{config.laplace_structure!r}.')
  _require(isinstance(config.initial_per_class, int) and
           config.initial_per_class >= 0,
           'config.initial_per_class must be an integer >= 0 (0: a uniformly '
           f'random initial set), got {config.initial_per_class!r}.')
  _require(config.initial_strategy in INITIAL_STRATEGIES,
           f'config.initial_strategy must be one of '
           f'{", ".join(INITIAL_STRATEGIES)}, got {config.initial_strategy!r}.')
  _require(config.initial_strategy == 'random' or not config.initial_per_class,
           f'config.initial_strategy {config.initial_strategy!r} chooses the '
           'initial set without labels; set config.initial_per_class = 0.')
  _require(_int_at_least(config.epoch_samples, 0),
           'config.epoch_samples must be an integer >= 0 (0: an epoch is one '
           f'pass over the training rows), got {config.epoch_samples!r}.')
  patience = config.early_stopping_patience
  _require(_int_at_least(patience, 0),
           'config.early_stopping_patience must be an integer >= 0 (epochs '
           f'without improvement; 0: off), got {patience!r}.')
  _require(not patience or config.validation_size > 0,
           f'config.early_stopping_patience = {patience} scores every epoch '
           'on a validation set, but config.validation_size = '
           f'{config.validation_size}: set config.validation_size > 0 '
           '(labeled test examples held out for it) or '
           'config.early_stopping_patience = 0.')
  _require(config.train_loop in ('auto', 'python', 'jit'),
           "config.train_loop must be 'auto', 'python' or 'jit', got "
           f'{config.train_loop!r}.')
  needs = ()
  if config.strategy in acquisition.names():
    needs = acquisition.resolve(acquisition.get(config.strategy),
                                config.hparams)[0].needs
  _validate_pool_subsample(config, needs)
  # MC dropout without dropout makes the K passes identical: every score on
  # them (BALD, BatchBALD, EPIG, ...) is then degenerate.
  if ('mc_log_probs' in needs and
      config.posterior == 'mc_dropout' and config.dropout_rate == 0):
    raise errors.ConfigError(
        f'config.strategy {config.strategy!r} needs K distinct stochastic '
        "passes, but config.posterior 'mc_dropout' with config.dropout_rate "
        '= 0 makes them identical. Set config.dropout_rate > 0 or choose '
        f'another config.posterior ({", ".join(posterior.names())}).')


SUBSAMPLED_NEEDS = ('log_probs', 'mc_log_probs')


def _validate_pool_subsample(config, needs) -> None:
  """`config.pool_subsample`: 0, or at least a query, for prediction-only
  strategies (the others read the rest of the pool too)."""
  size = config.pool_subsample
  _require(_int_at_least(size, 0),
           'config.pool_subsample must be an integer >= 0 (0: score the '
           f'whole pool), got {size!r}.')
  if not size:
    return
  _require(size >= config.query_size,
           f'config.pool_subsample = {size} is smaller than config.'
           f'query_size = {config.query_size}: a query picks from the '
           'subsample, so make it at least the query size (or 0).')
  other = [need for need in needs if need not in SUBSAMPLED_NEEDS]
  _require(not other,
           f'config.pool_subsample = {size} scores a random part of the pool, '
           f'but config.strategy {config.strategy!r} also needs '
           f'{", ".join(other)} of the whole pool; use it with strategies '
           f'that need only {" or ".join(SUBSAMPLED_NEEDS)}, or set '
           'config.pool_subsample = 0.')


def _validate_oracle(config) -> None:
  """Checks the simulated oracle's and the costs' fields (their shapes need
  the data: `jal.oracle.read_confusion`, `jal.oracle.label_costs`)."""
  _require(_finite_number(config.oracle_noise) and
           0 <= config.oracle_noise < 1,
           'config.oracle_noise (the probability of a wrong answer) must lie '
           f'in [0, 1), got {config.oracle_noise!r}.')
  for field in ('oracle_confusion', 'label_costs'):
    value = config[field]
    _require(value is None or isinstance(value, (str, list, tuple)),
             f'config.{field} must be None, a list or a path to a .npy file, '
             f'got {value!r}.')
    _require(not isinstance(value, str) or os.path.isfile(value),
             f'config.{field} = {value!r} is not a file; give the path of a '
             '.npy array (numpy.save) or set it to None.')
  _require(config.oracle_confusion is None or config.oracle_noise == 0,
           f'config.oracle_noise = {config.oracle_noise} and '
           'config.oracle_confusion both describe the oracle\'s errors; set '
           'one of them (oracle_noise = 0 with a confusion matrix).')


def _validate_stopping(config) -> None:
  """Checks `config.validation_size` and the stopping parameters."""
  _require(_int_at_least(config.validation_size, 0),
           'config.validation_size must be an integer >= 0 (0: no validation '
           f'set), got {config.validation_size!r}.')
  stopping = config.stopping
  for field in ('budget', 'max_rounds'):
    value = stopping[field]
    _require(value is None or _int_at_least(value, 0),
             f'config.stopping.{field} must be None or an integer >= 0, got '
             f'{value!r}.')
  target = stopping.target_accuracy
  _require(target is None or (_finite_number(target) and 0 < target <= 1),
           'config.stopping.target_accuracy must be None or lie in (0, 1], '
           f'got {target!r}.')
  _require(target is None or config.validation_size > 0,
           f'config.stopping.target_accuracy = {target} is read on a '
           'validation set: set config.validation_size > 0 (labeled test '
           'examples held out for it).')
  _require(_finite_number(stopping.plateau_delta) and
           stopping.plateau_delta > 0,
           'config.stopping.plateau_delta must be a number > 0, got '
           f'{stopping.plateau_delta!r}.')
  _require(_finite_number(stopping.kappa) and -1 < stopping.kappa < 1,
           'config.stopping.kappa (a Cohen\'s kappa threshold) must lie in '
           f'(-1, 1), got {stopping.kappa!r}.')
  for field in ('plateau_window', 'kappa_window'):
    value = stopping[field]
    _require(_int_at_least(value, 1),
             f'config.stopping.{field} must be a positive integer (rounds), '
             f'got {value!r}.')
  size = stopping.stop_set_size
  _require(_int_at_least(size, 0),
           'config.stopping.stop_set_size must be an integer >= 0 (0: no '
           f'stop set), got {size!r}.')


def validate_budget(config, pool_size: int) -> None:
  """Checks that the labeling budget fits in a pool of `pool_size`."""
  budget = config.initial_size + config.num_rounds * config.query_size
  _require(budget <= pool_size,
           f'config.initial_size + config.num_rounds * config.query_size = '
           f'{config.initial_size} + {config.num_rounds} * {config.query_size}'
           f' = {budget} exceeds the pool of {pool_size} examples. Lower '
           'one of them or use a larger pool (config.pool_size).')
