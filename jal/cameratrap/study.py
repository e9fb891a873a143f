"""The camera-trap study: strategies × embedding losses × seeds, and its figures.

A study config holds `base` (a pipeline config), `grid` ({embedding loss:
strategies}) and `seeds`. `run` prepares each (seed, loss) once (detector,
pre-trained embedder; cached under `prepared/`), measures the full-data
references (`full_data`), runs every cell as a `pipeline.run` in
`<dataset>-<loss>/<strategy>/seed<k>/` and writes `grid.json`, so
`experiments/report.py` reads the directory like any jal study. `write`
then adds `cameratrap.md` and `cameratrap.png` with the seed's comparisons:
the jumps after fine-tunes, triplet against cross-entropy features early and
late, k-center against the others, and the labels needed to reach the
full-data head ("labeling reduction").
"""

import copy
import json
import os
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from matplotlib import figure as mpl_figure

from jal import checkpoint
from jal import errors
from jal import study as study_lib
from jal.cameratrap import classifier
from jal.cameratrap import embedder as embedder_lib
from jal.cameratrap import frames
from jal.cameratrap import pipeline
from jal.report import runs as runs_lib
from jal.report import stats

REPORT = 'cameratrap.md'
FIGURE = 'cameratrap.png'
REFERENCE = 'full_data.json'


def check(bench: ml_collections.ConfigDict) -> None:
  """Refuses a study config that cannot run, naming the field."""
  for field in ('base', 'grid', 'seeds'):
    if field not in bench:
      raise errors.ConfigError(
          f'The study config has no {field!r}; give base (a pipeline '
          'config), grid ({loss: strategies}) and seeds.')
  pipeline.check_config(bench.base)
  if not bench.grid:
    raise errors.ConfigError('grid is empty; give {loss: (strategies, ...)}.')
  for loss, strategies in bench.grid.items():
    embedder_lib.check_loss(loss)
    for strategy in strategies:
      pipeline.check_config(cell_config(bench, loss, strategy, 0))
  seeds = list(bench.seeds)
  if not seeds or any(not isinstance(s, int) or s < 0 for s in seeds):
    raise errors.ConfigError(
        f'seeds={bench.seeds!r}: give non-negative integers, e.g. (0, 1, 2).')


def cells(bench: ml_collections.ConfigDict) -> list[study_lib.Cell]:
  """The study's cells; the dataset names the embedding loss."""
  return [study_lib.Cell(f'{bench.base.dataset}-{loss}', strategy, seed)
          for loss, strategies in bench.grid.items()
          for strategy in strategies for seed in bench.seeds]


def cell_config(bench, loss: str, strategy: str, seed: int):
  config = copy.deepcopy(bench.base)
  config.embedding_loss = loss
  config.strategy = strategy
  config.seed = seed
  return config


def full_data(config, split: frames.Split, prepared: pipeline.Prepared
              ) -> dict:
  """Test accuracies with every kept pool frame labeled.

  Returns:
    `head`: the head on the pre-trained embedder's features (the
    reference of "labels to full-data accuracy"); `finetuned`: the head
    after the embedder is fine-tuned on all those labels for
    `pretrain_epochs` (the seed's model trained on every label); and
    `num_kept`, `num_animals` (kept frames that are not empty).
  """
  kept = prepared.kept
  pool = jnp.asarray(classifier.standardize(split.pool_images[kept],
                                            prepared.mean, prepared.std))
  test = jnp.asarray(classifier.standardize(split.test_images, prepared.mean,
                                            prepared.std))
  labels = jnp.asarray(split.pool_labels[kept])
  everything = jnp.ones(kept.size, bool)
  num_classes = split.num_target_classes + 1
  key = jax.random.fold_in(jax.random.key(config.seed), 100)

  def head_accuracy(params):
    pool_features = embedder_lib.embed(params, pool,
                                       chunk_size=config.chunk_size)
    test_features = embedder_lib.embed(params, test,
                                       chunk_size=config.chunk_size)
    head = classifier.fit_head(
        key, pool_features, labels, everything, num_classes=num_classes,
        hidden_size=config.head_hidden_size,
        batch_size=config.head_batch_size, num_steps=config.head_steps,
        learning_rate=config.head_learning_rate)
    log_probs = classifier.head_log_probs(
        head, test_features, num_classes=num_classes,
        hidden_size=config.head_hidden_size, chunk_size=config.chunk_size)
    return float(np.mean(np.asarray(log_probs).argmax(-1) ==
                         split.test_labels))

  embedder = jax.tree.map(jnp.asarray, prepared.embedder)
  finetuned = embedder_lib.fit(
      jax.random.fold_in(key, 1), embedder, pool, labels, everything,
      loss=config.embedding_loss, margin=config.triplet_margin,
      batch_size=config.embedder_batch_size,
      num_epochs=config.pretrain_epochs,
      learning_rate=config.embedder_learning_rate)
  return dict(head=head_accuracy(embedder),
              finetuned=head_accuracy(finetuned), num_kept=int(kept.size),
              num_animals=int(np.sum(split.pool_is_animal[kept])))


def _prepared(bench, loss, seed, split, workdir, log):
  """`pipeline.prepare` for (seed, loss), computed once and cached."""
  config = cell_config(bench, loss, bench.grid[loss][0], seed)
  path = os.path.join(workdir, 'prepared', f'{loss}_seed{seed}.npz')
  if os.path.exists(path):
    return pipeline.load_prepared(path, config, split)
  log(f'seed {seed}, {loss}: training the detector and the embedder')
  prepared = pipeline.prepare(config, split)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  pipeline.save_prepared(path, config, *prepared)
  return prepared


def run(bench: ml_collections.ConfigDict, workdir: str,
        log: Callable[[str], None] = print) -> None:
  """Runs every cell not finished yet; resumes cells cut short."""
  os.makedirs(workdir, exist_ok=True)
  study_lib.write_grid(workdir, cells(bench))
  for seed in bench.seeds:
    base = bench.base
    split = frames.make_split(
        pipeline.load_splits(base.dataset, None, seed), base.source_classes,
        base.target_classes, base.empty_share, seed)
    for loss, strategies in bench.grid.items():
      reference_path = os.path.join(workdir, 'prepared',
                                    f'{loss}_seed{seed}_{REFERENCE}')
      todo = [s for s in strategies if not os.path.exists(os.path.join(
          workdir, study_lib.Cell(f'{base.dataset}-{loss}', s, seed).path,
          'summary.json'))]
      if not todo and os.path.exists(reference_path):
        continue
      prepared = _prepared(bench, loss, seed, split, workdir, log)
      log(f'seed {seed}, {loss}: detector {json.dumps(prepared[1])}')
      if not os.path.exists(reference_path):
        reference = full_data(cell_config(bench, loss, strategies[0], seed),
                              split, prepared[0])
        checkpoint.atomic_write(reference_path, json.dumps(reference).encode())
        log(f'seed {seed}, {loss}: full data {reference}')
      for strategy in todo:
        cell = study_lib.Cell(f'{base.dataset}-{loss}', strategy, seed)
        log(f'{cell.path}')
        pipeline.run(cell_config(bench, loss, strategy, seed),
                     os.path.join(workdir, cell.path), split, prepared,
                     log=lambda line: log('  ' + line))


# Analysis ---------------------------------------------------------------------


def finetune_jumps(records: Sequence[Mapping]) -> tuple[list[float],
                                                        list[float]]:
  """Accuracy changes into rounds with a fine-tune, and into the others."""
  at, elsewhere = [], []
  for before, after in zip(records, records[1:]):
    change = after['test_accuracy'] - before['test_accuracy']
    (at if after['finetuned'] else elsewhere).append(change)
  return at, elsewhere


def _records(workdir: str, cell: study_lib.Cell) -> list[dict] | None:
  path = os.path.join(workdir, cell.path)
  if not os.path.exists(os.path.join(path, 'summary.json')):
    return None
  return runs_lib.read_records(path)


def _references(workdir, loss, seeds) -> dict[int, dict]:
  found = {}
  for seed in seeds:
    path = os.path.join(workdir, 'prepared', f'{loss}_seed{seed}_{REFERENCE}')
    if os.path.exists(path):
      with open(path) as f:
        found[seed] = json.load(f)
  return found


def _fmt(values) -> str:
  values = [v for v in values if v is not None]
  if not values:
    return '–'
  mean, std = stats.mean_std(np.asarray(values, np.float64))
  return f'{float(mean):.4f} ± {float(std):.4f}'


def write(bench: ml_collections.ConfigDict, workdir: str) -> str:
  """Writes `cameratrap.md` and `cameratrap.png`; returns the markdown."""
  base = bench.base
  loaded = {}
  for cell in cells(bench):
    records = _records(workdir, cell)
    if records is not None:
      loaded[cell] = records
  losses = list(bench.grid)
  lines = [f'# Camera-trap pipeline study ({base.dataset}: classes '
           f'{tuple(base.source_classes)} → {tuple(base.target_classes)})',
           '',
           f'{len(loaded)} finished runs of {len(cells(bench))}; seeds '
           f'{tuple(bench.seeds)}; {base.initial_size} initial labels, '
           f'{base.query_size} per step, fine-tune every '
           f'{base.finetune_every}, budget {base.budget}; '
           f'{base.empty_share:.0%} empty frames.', '']

  lines += ['## Detector (target pool, threshold '
            f'{base.detector_threshold})', '',
            '| loss | seed | accuracy | precision | recall | kept | '
            'empties kept |', '|---|---|---|---|---|---|---|']
  for loss in losses:
    for seed in bench.seeds:
      summaries = [os.path.join(workdir, cell.path, 'summary.json')
                   for cell in cells(bench) if cell.seed == seed and
                   cell.dataset == f'{base.dataset}-{loss}']
      found = [p for p in summaries if os.path.exists(p)]
      if not found:
        continue
      with open(found[0]) as f:
        detector = json.load(f)['detector']
      lines.append(
          f'| {loss} | {seed} | {detector["accuracy"]:.4f} | '
          f'{detector["precision"]:.4f} | {detector["recall"]:.4f} | '
          f'{detector["kept"]} | {detector["empty_as_animal"]} |')
  lines.append('')

  # Early: the last count before the first fine-tune (the pre-trained
  # features alone); the paired comparisons add half the budget and the
  # budget, and the AUBC.
  every = base.finetune_every or base.budget
  early = max(base.initial_size, (base.initial_size // every + 1) * every -
              base.query_size)
  lines += ['## Accuracy by labels (mean ± std over seeds)', '']
  checkpoints = sorted({base.initial_size, early, base.budget} | {
      k * base.finetune_every for k in range(
          1, base.budget // max(base.finetune_every, 1) + 1)} if
      base.finetune_every else {base.initial_size, base.budget})
  lines += ['| loss | strategy | ' + ' | '.join(map(str, checkpoints)) +
            ' | AUBC |', '|---|---|' + '---|' * (len(checkpoints) + 1)]
  curves = {}
  for loss in losses:
    for strategy in bench.grid[loss]:
      by_seed = {c.seed: r for c, r in loaded.items()
                 if c.dataset == f'{base.dataset}-{loss}' and
                 c.strategy == strategy}
      if not by_seed:
        continue
      curves[(loss, strategy)] = by_seed
      cols = []
      for count in checkpoints:
        cols.append(_fmt([next((r['test_accuracy'] for r in recs
                                if r['num_labeled'] >= count), None)
                          for recs in by_seed.values()]))
      aubc = [json.load(open(os.path.join(
          workdir, study_lib.Cell(f'{base.dataset}-{loss}', strategy,
                                  s).path, 'summary.json')))['aubc']
              for s in by_seed]
      lines.append(f'| {loss} | {strategy} | ' + ' | '.join(cols) +
                   f' | {_fmt(aubc)} |')
  lines.append('')

  lines += ['## Jumps after fine-tunes', '',
            'Mean change of test accuracy into a round whose embedder was '
            'just fine-tuned, against the mean change into the other rounds '
            '(all runs of the loss pooled).', '',
            '| loss | after a fine-tune | other rounds | fine-tunes |',
            '|---|---|---|---|']
  for loss in losses:
    at, elsewhere = [], []
    for (l, _), by_seed in curves.items():
      if l == loss:
        for recs in by_seed.values():
          a, e = finetune_jumps(recs)
          at += a
          elsewhere += e
    if at:
      lines.append(f'| {loss} | {np.mean(at):+.4f} | '
                   f'{np.mean(elsewhere):+.4f} | {len(at)} |')
  lines.append('')

  lines += ['## Paired comparisons (test accuracy, seeds paired)', '']
  pairs = []
  # The seed's loss first: triplet minus cross-entropy on each strategy.
  ordered = sorted(losses, key=lambda loss: loss != 'triplet')
  for other in ordered[1:]:
    for strategy in bench.grid[ordered[0]]:
      if (ordered[0], strategy) in curves and (other, strategy) in curves:
        pairs.append(((ordered[0], strategy), (other, strategy)))
  for loss in ordered:
    for strategy in bench.grid[loss]:
      if strategy != 'kcenter' and (loss, 'kcenter') in curves and (
          loss, strategy) in curves:
        pairs.append(((loss, 'kcenter'), (loss, strategy)))
  counts = sorted({early, base.budget // 2, base.budget})
  lines += ['Accuracy differences at ' + ', '.join(map(str, counts)) +
            ' labels (the first before any fine-tune), and of the AUBC; '
            'one-sided paired t-tests over seeds.', '',
            '| A | B | at | mean A − B | p (A > B) | p (A < B) |',
            '|---|---|---|---|---|---|']
  aubcs = {key: {s: runs_lib.read_run(
      study_lib.Cell(f'{base.dataset}-{key[0]}', key[1], s),
      os.path.join(workdir, study_lib.Cell(f'{base.dataset}-{key[0]}',
                                           key[1], s).path)).aubc
                 for s in by_seed} for key, by_seed in curves.items()}

  def at_count(runs, count):
    return {s: next((r['test_accuracy'] for r in recs
                     if r['num_labeled'] >= count), None)
            for s, recs in runs.items()}

  for a, b in pairs:
    rows = [(str(c), stats.paired_test(at_count(curves[a], c),
                                       at_count(curves[b], c)))
            for c in counts]
    rows.append(('AUBC', stats.paired_test(aubcs[a], aubcs[b])))
    for at, test in rows:
      lines.append(f'| {" ".join(a)} | {" ".join(b)} | {at} | '
                   f'{test.mean_difference:+.4f} | {test.p_better:.3f} | '
                   f'{test.p_worse:.3f} |')
  lines.append('')

  lines += ['## Labels to reach the full-data head ("labeling reduction")', '',
            'Target: the head trained on every kept pool frame\'s label with '
            'the pre-trained embedder (per seed). Reduction: 1 − labels / '
            'kept pool frames.', '',
            '| loss | strategy | full-data head | labels to reach it (per '
            'seed) | reduction | full data, embedder fine-tuned | labels to '
            'reach that |', '|---|---|---|---|---|---|---|']
  for (loss, strategy), by_seed in curves.items():
    references = _references(workdir, loss, by_seed)
    reached = {'head': [], 'finetuned': []}
    reductions = []
    for seed, recs in by_seed.items():
      if seed not in references:
        continue
      for name, found in reached.items():
        found.append(stats.labels_to_reach(
            [r['num_labeled'] for r in recs],
            [r['test_accuracy'] for r in recs], references[seed][name]))
      if reached['head'][-1] is not None:
        reductions.append(1 - reached['head'][-1] /
                          references[seed]['num_kept'])
    shown = {name: ', '.join('> budget' if c is None else str(c)
                             for c in found)
             for name, found in reached.items()}
    lines.append(
        f'| {loss} | {strategy} | '
        f'{_fmt([r["head"] for r in references.values()])} | '
        f'{shown["head"]} | {_fmt(reductions) if reductions else "–"} | '
        f'{_fmt([r["finetuned"] for r in references.values()])} | '
        f'{shown["finetuned"]} |')
  lines.append('')
  lines.append(f'![curves]({FIGURE})')
  text = '\n'.join(lines) + '\n'
  checkpoint.atomic_write(os.path.join(workdir, REPORT), text.encode())
  if curves:
    _figure(curves, base).savefig(os.path.join(workdir, FIGURE))
  return text


def _figure(curves, base) -> mpl_figure.Figure:
  """Mean curves per (loss, strategy), fine-tunes as vertical lines."""
  fig = mpl_figure.Figure(figsize=(8, 5.5), dpi=110, layout='tight')
  ax = fig.subplots()
  for (loss, strategy), by_seed in sorted(curves.items()):
    recs = list(by_seed.values())
    length = min(len(r) for r in recs)
    x = [r['num_labeled'] for r in recs[0][:length]]
    y = np.mean([[r['test_accuracy'] for r in rr[:length]] for rr in recs], 0)
    ax.plot(x, y, ls='-' if loss == 'triplet' else '--', lw=1.3,
            label=f'{loss} {strategy}')
  if base.finetune_every:
    for k in range(1, base.budget // base.finetune_every + 1):
      ax.axvline(k * base.finetune_every, color='0.8', lw=0.8, zorder=0)
  ax.set_xlabel('labeled frames')
  ax.set_ylabel('test accuracy')
  ax.set_title('camera-trap pipeline (grey: embedder fine-tunes)')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  return fig
