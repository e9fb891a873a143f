"""Early stopping on a validation set (`config.early_stopping_patience`)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import config as config_lib
from jal import errors
from jal import loop
from jal import models
from jal import rounds
from jal import session
from jal import train
from jal import trials
from jal.data import digits
from jal.data import local
from tests.synthetic import make_blobs_dataset

# Adam at 3e-4 on the blobs: the validation accuracy climbs for a few epochs
# and then stays, so the best epoch is neither the first nor the last.
LEARNING_RATE = 3e-4
MAX_EPOCHS = 40


def _setup():
  dataset = make_blobs_dataset(num_pool=200, num_test=60, side=4)
  images = jnp.asarray(dataset.pool_images)
  labels = jnp.asarray(dataset.pool_labels, jnp.int32)
  validation = (jnp.asarray(dataset.test_images),
                jnp.asarray(dataset.test_labels, jnp.int32))
  mask = jnp.arange(200) < 30
  rows = train.TrainSet(mask, jnp.where(mask, labels, -1))
  model = models.get('mlp', 3, dropout_rate=0.1)
  variables = model.init(jax.random.key(0), (4, 4, 1))
  return model, variables, images, rows, validation


def _trainer(model, in_jit_loop, patience):
  return train.Trainer(model, train.make_optimizer('adam', LEARNING_RATE),
                       batch_size=16, in_jit_loop=in_jit_loop,
                       early_stopping_patience=patience, eval_chunk=32)


def _fit(in_jit_loop, patience, num_epochs=MAX_EPOCHS):
  model, variables, images, rows, validation = _setup()
  trainer = _trainer(model, in_jit_loop, patience)
  fit = trainer.fit
  if in_jit_loop:
    fit = jax.jit(fit, static_argnums=4)
  return fit(jax.random.key(1), variables, images, rows, num_epochs,
             validation)


def _assert_trees_equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize('in_jit_loop', [False, True])
def test_the_best_epochs_state_is_returned(in_jit_loop):
  stopped = _fit(in_jit_loop, patience=2)
  best = int(stopped.best_epoch)
  assert 1 < best < int(stopped.epochs_run) < MAX_EPOCHS
  # A run of exactly best_epoch epochs with the same key, without early
  # stopping, ends in the same state.
  exact = _fit(in_jit_loop, patience=0, num_epochs=best)
  _assert_trees_equal(stopped._replace(best_epoch=(), epochs_run=()), exact)
  if in_jit_loop:
    return
  # And it is the best on the validation set: a state one epoch on is not
  # strictly better.
  model, _, _, _, validation = _setup()
  correct = lambda state: int(train.validation_correct(
      model, state.variables, *validation, 32))
  later = _fit(in_jit_loop, patience=0, num_epochs=best + 1)
  assert correct(later) <= correct(stopped)


def test_patience_stops_training():
  runs = {p: _fit(False, patience=p) for p in (1, 3)}
  for patience, state in runs.items():
    # Stopped `patience` epochs after the last improvement.
    assert int(state.epochs_run) == int(state.best_epoch) + patience
  assert int(runs[1].epochs_run) < int(runs[3].epochs_run)
  # num_epochs stays the most: out of epochs before out of patience.
  short = _fit(False, patience=3, num_epochs=2)
  assert int(short.epochs_run) == 2 and int(short.best_epoch) <= 2


def test_python_and_in_jit_loops_agree():
  python, jitted = _fit(False, patience=3), _fit(True, patience=3)
  assert int(python.best_epoch) == int(jitted.best_epoch)
  assert int(python.epochs_run) == int(jitted.epochs_run)
  assert int(python.step) == int(jitted.step)
  for x, y in zip(jax.tree.leaves(python.variables),
                  jax.tree.leaves(jitted.variables), strict=True):
    np.testing.assert_allclose(x, y, atol=1e-5)


def test_vmapped_fits_stop_each_at_its_own_epoch():
  model, variables, images, rows, validation = _setup()
  trainer = _trainer(model, True, patience=2)
  # Fewer labels learn slower: the two fits stop at different epochs.
  masks = jnp.stack([jnp.arange(200) < 8, jnp.arange(200) < 60])
  fit = lambda mask: trainer.fit(
      jax.random.key(5), variables, images,
      train.TrainSet(mask, jnp.where(mask, rows.labels, -1)), MAX_EPOCHS,
      validation)
  batched = jax.jit(jax.vmap(fit))(masks)
  assert int(batched.epochs_run[0]) != int(batched.epochs_run[1])
  for i, mask in enumerate(masks):
    alone = jax.jit(fit)(mask)
    assert int(batched.best_epoch[i]) == int(alone.best_epoch)
    assert int(batched.epochs_run[i]) == int(alone.epochs_run)
    for x, y in zip(jax.tree.leaves(batched.variables),
                    jax.tree.leaves(alone.variables), strict=True):
      np.testing.assert_allclose(x[i], y, atol=1e-5)


def test_fit_without_a_validation_set_is_refused():
  model, variables, images, rows, _ = _setup()
  with pytest.raises(errors.ConfigError, match='validation'):
    _trainer(model, False, 2).fit(jax.random.key(0), variables, images, rows,
                                  3)


@pytest.mark.parametrize('patience, validation_size, match', [
    (3, 0, r'early_stopping_patience = 3 .* config.validation_size = 0'),
    (-1, 100, 'early_stopping_patience must be an integer >= 0'),
    (True, 100, 'early_stopping_patience must be an integer >= 0'),
])
def test_config_refusals(patience, validation_size, match):
  config = config_lib.default()
  config.early_stopping_patience = patience
  config.validation_size = validation_size
  with pytest.raises(errors.ConfigError, match=match):
    config_lib.validate(config)


def _config(patience):
  """Digits, MLP, at most 12 epochs, 20 + 10 labels, in-jit training."""
  config = config_lib.default()
  config.num_epochs = 12
  config.initial_size = 20
  config.query_size = 10
  config.num_rounds = 1
  config.strategy = 'entropy'
  config.train_loop = 'jit'
  config.pool_size = 400
  config.validation_size = 100
  config.early_stopping_patience = patience
  config.stopping.stop_set_size = 0
  return config


def _records(workdir):
  with open(os.path.join(workdir, loop.RESULTS)) as f:
    return [json.loads(line) for line in f]


def test_records_and_vmapped_trials_equal_sequential_runs(tmp_path):
  seeds = (0, 1)
  config = _config(patience=2)
  vmapped = [str(tmp_path / f'v{s}') for s in seeds]
  trials.run(config, seeds, vmapped)
  # The second seed of the batch (one sequential run: each compiles anew).
  for seed, workdir in list(zip(seeds, vmapped))[1:]:
    seed_config = _config(patience=2)
    seed_config.seed = seed
    sequential = str(tmp_path / f's{seed}')
    loop.run(seed_config, sequential)
    ra, rb = _records(workdir), _records(sequential)
    for key in ('best_epoch', 'epochs_run', 'selected'):
      assert [r[key] for r in ra] == [r[key] for r in rb], key
    np.testing.assert_allclose([r['test_accuracy'] for r in ra],
                               [r['test_accuracy'] for r in rb], atol=1e-6)
    for record in ra:
      assert 1 <= record['best_epoch'] <= record['epochs_run'] <= 12
      assert (record['epochs_run'] == 12 or
              record['epochs_run'] == record['best_epoch'] + 2)


def test_without_early_stopping_the_records_say_num_epochs():
  config = config_lib.default()
  config.num_epochs = 7
  config.initial_size = 10
  config.query_size = 10
  exp, data = loop.setup(config, make_blobs_dataset())
  trained = rounds.untrained(exp, data, jax.random.key(0))
  assert trained.epochs == ()
  diagnostics = rounds.diagnostics(exp, data, trained)
  state = loop.init_state(exp, data, None)
  record = loop.diagnostics_record(exp.num_classes, state, diagnostics, [],
                                   [])
  assert record['best_epoch'] == record['epochs_run'] == 7


def test_epoch_samples_fix_the_length_of_an_epoch():
  model, variables, images, rows, validation = _setup()
  trainer = train.Trainer(model, train.make_optimizer('adam', LEARNING_RATE),
                          batch_size=16, in_jit_loop=False, epoch_samples=100)
  state = trainer.fit(jax.random.key(1), variables, images, rows, 2,
                      validation)
  assert int(state.step) == 2 * 7  # ceil(100 / 16) steps, 30 rows cycled
  config = config_lib.default()
  config.epoch_samples = -1
  with pytest.raises(errors.ConfigError, match='epoch_samples must be'):
    config_lib.validate(config)


def test_a_campaign_with_early_stopping_records_and_resumes(tmp_path):
  splits = digits.load_splits(0)
  n, names = 200, tuple(str(c) for c in range(10))
  pool = local.LocalPool(splits.train_images[:n],
                         tuple(f'u/{i}.png' for i in range(n)),
                         np.full(n, -1, np.int32), names, None)
  test = local.LocalPool(splits.test_images[:150],
                         tuple(f't/{i}.png' for i in range(150)),
                         splits.test_labels[:150].astype(np.int32), names,
                         None)
  config = config_lib.default()
  config.num_epochs = 6
  config.initial_size = 20
  config.query_size = 10
  config.num_rounds = 1
  config.validation_size = 50
  config.early_stopping_patience = 1
  workdir = str(tmp_path / 'campaign')
  session.Campaign.create(workdir, config, pool, test)
  # Reopened from its checkpoint (the trained model's tree included).
  campaign = session.Campaign.open(workdir, pool, test)
  batch = campaign.ask()
  truth = splits.train_labels[:n]
  campaign.tell(batch.ids, [int(truth[i]) for i in batch.indices])
  records = session.Campaign.open(workdir, pool, test).records
  assert len(records) == 1  # the round-0 model, recorded at the tell
  for record in records:
    assert 1 <= record['best_epoch'] <= record['epochs_run'] <= 6
