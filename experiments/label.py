"""Label your own data: an ask/tell labeling campaign on the command line.

  # Start: images in ROOT/<class>/*.png (labeled) and ROOT/unlabeled/** (pool)
  python experiments/label.py --workdir=/tmp/camp create --images=ROOT \
      --image_size=28,28 --config=configs/label_default.py
  # The next batch, as a CSV with an empty `label` column to fill in
  python experiments/label.py --workdir=/tmp/camp ask --n=100 --out=batch.csv
  # ... fill in the labels (class names or indices), then
  python experiments/label.py --workdir=/tmp/camp tell --labels=batch.csv
  python experiments/label.py --workdir=/tmp/camp status
  # Or label the batch here, in the terminal, one item after another
  python experiments/label.py --workdir=/tmp/camp label

The pool can also be a manifest (`--manifest=items.csv`, columns path and
optional id, label) or a feature array (`--features=x.npy`, with `--ids`);
`--test_images`/`--test_manifest` name a held-out labeled set for accuracy.
`--out=tasks.json` writes the batch as Label Studio tasks (the model's
prediction and acquisition score included) and `--labels=export.json` reads
Label Studio's JSON export back. The campaign is saved after every command:
stop at any point and go on later. Errors are one line (`error: ...`).
"""

import json
import os

from absl import flags

from jal import annotate
from jal import checkpoint
from jal import cli
from jal import errors
from jal import labelers
from jal import session
from jal.data import local

_CONFIG = cli.define_config('configs/label_default.py',
                           'Experiment config (create only).')
_WORKDIR = cli.define_workdir('The campaign\'s directory.')
_CACHE = cli.define_compilation_cache()
_IMAGES = flags.DEFINE_string('images', None, 'create: image folder root.')
_MANIFEST = flags.DEFINE_string('manifest', None,
                                'create: CSV/JSONL manifest of images.')
_FEATURES = flags.DEFINE_string('features', None, 'create: [N, D] .npy.')
_IDS = flags.DEFINE_string('ids', None, 'create: ids of --features, one per '
                           'line.')
_TEST_IMAGES = flags.DEFINE_string('test_images', None,
                                   'create: held-out labeled image folder.')
_TEST_MANIFEST = flags.DEFINE_string('test_manifest', None,
                                     'create: held-out labeled manifest.')
_CLASS_NAMES = flags.DEFINE_list(
    'class_names', None, 'create: the classes, in order (default: the class '
    'folders of --images, else of --test_images, or the manifest\'s labels).')
_IMAGE_SIZE = flags.DEFINE_list('image_size', None,
                                'create: resize images to H,W.')
_CHANNELS = flags.DEFINE_integer('channels', None,
                                 'create: 1 (grayscale) or 3 (RGB).')
_N = flags.DEFINE_integer('n', None, 'ask: batch size (default the config\'s '
                          'query_size).')
_OUT = flags.DEFINE_string('out', None, 'ask: write the batch to this .csv, '
                           '.jsonl or .json (Label Studio tasks) file.')
_IMAGE_ROOT = flags.DEFINE_string('image_root', None, 'ask: Label Studio image'
                                  ' paths relative to this directory.')
_LABELS = flags.DEFINE_string('labels', None, 'tell: answers as .csv/.jsonl '
                              '(id,label) or a Label Studio .json export.')

SOURCE = 'source.json'
COMMANDS = ('create', 'ask', 'tell', 'status', 'label')


def _source_spec() -> dict:
  given = [name for name, flag in (('images', _IMAGES), ('manifest', _MANIFEST),
                                   ('features', _FEATURES)) if flag.value]
  if len(given) != 1:
    raise errors.ConfigError(
        'create needs exactly one pool source: --images=ROOT, '
        f'--manifest=FILE or --features=FILE.npy (got {given or "none"}).')
  size = None
  if _IMAGE_SIZE.value:
    try:
      size = [int(v) for v in _IMAGE_SIZE.value]
      assert len(size) == 2 and min(size) > 0
    except (ValueError, AssertionError):
      raise errors.ConfigError(
          f'--image_size={",".join(_IMAGE_SIZE.value)}: give two positive '
          'ints H,W, e.g. --image_size=28,28.') from None
  options = dict(image_size=size, channels=_CHANNELS.value)
  pool = dict(kind=given[0], path=os.path.abspath(
      {'images': _IMAGES, 'manifest': _MANIFEST, 'features': _FEATURES}[
          given[0]].value), **options)
  if given[0] == 'features':
    pool = dict(kind='features', path=pool['path'],
                ids=_IDS.value and os.path.abspath(_IDS.value))
  test = None
  if _TEST_IMAGES.value or _TEST_MANIFEST.value:
    kind = 'images' if _TEST_IMAGES.value else 'manifest'
    test = dict(kind=kind, path=os.path.abspath(
        _TEST_IMAGES.value or _TEST_MANIFEST.value), **options)
  return dict(pool=pool, test=test, class_names=_CLASS_NAMES.value)


def _load(spec: dict | None, class_names=None):
  if spec is None:
    return None
  if spec['kind'] == 'features':
    return local.features(spec['path'], ids=spec.get('ids'),
                          class_names=class_names)
  size = tuple(spec['image_size']) if spec.get('image_size') else None
  read = local.image_folder if spec['kind'] == 'images' else local.manifest
  return read(spec['path'], image_size=size, channels=spec.get('channels'),
              class_names=class_names)


def _load_pools(spec: dict):
  """The pool and the test set; the test set's classes serve a pool of
  unlabeled images only."""
  names = spec.get('class_names')
  test = _load(spec['test'], names)
  pool = _load(spec['pool'], names or (test and test.class_names))
  return pool, test


def _open(workdir: str) -> session.Campaign:
  path = os.path.join(workdir, SOURCE)
  try:
    with open(path) as f:
      spec = json.load(f)
  except FileNotFoundError:
    raise errors.CheckpointError(
        f'{workdir} holds no campaign ({path} is missing); start one with '
        f'`label.py --workdir={workdir} create --images=ROOT`.') from None
  pool, test = _load_pools(spec)
  return session.Campaign.open(workdir, pool, test)


def _print_batch(batch: session.Batch) -> None:
  print(f'batch of {len(batch.ids)} ({len(batch.answered)} answered):')
  for item, score, prediction in zip(batch.ids, batch.scores,
                                     batch.predictions):
    print(f'  {item}  score {score:.4f}  predicted {prediction or "-"}')


def _print_record(record: dict | None, campaign: session.Campaign) -> None:
  if record is None:
    batch = campaign.open_batch()
    print(f'recorded; {len(batch.ids) - len(batch.answered)} of the batch\'s '
          f'{len(batch.ids)} items still need a label.')
    return
  accuracy = record['test_accuracy']
  print(f"round {record['round']}: {record['num_labeled']} labeled, model "
        f"retrained" + ('' if accuracy is None else
                        f', test accuracy {accuracy:.4f}'))


def create(workdir: str) -> None:
  if os.path.exists(os.path.join(workdir, session.CAMPAIGN)):
    raise errors.CheckpointError(
        f'{workdir} already holds a campaign; go on with ask/tell/status, or '
        'pick a new --workdir.')
  spec = _source_spec()
  pool, test = _load_pools(spec)
  os.makedirs(workdir, exist_ok=True)
  checkpoint.atomic_write(os.path.join(workdir, SOURCE),
                          json.dumps(spec, indent=2).encode())
  session.Campaign.create(workdir, _CONFIG.value, pool, test)
  known = sum(1 for v in pool.labels if v >= 0)
  print(f'campaign in {workdir}: {len(pool.ids)} items, '
        f'{len(pool.class_names)} classes ({", ".join(pool.class_names)}), '
        f'{known} labeled. Next: label.py --workdir={workdir} ask')


def ask(workdir: str) -> None:
  campaign = _open(workdir)
  batch = campaign.ask(_N.value)
  if _OUT.value:
    items = campaign.items(batch)
    if _OUT.value.endswith('.json'):
      tasks = annotate.label_studio_tasks(items, campaign.pool.class_names,
                                          image_root=_IMAGE_ROOT.value)
      checkpoint.atomic_write(_OUT.value, json.dumps(tasks, indent=2).encode())
    else:
      annotate.write_batch(items, _OUT.value)
    print(f'wrote {len(items)} items to {_OUT.value}')
  else:
    _print_batch(batch)


def tell(workdir: str) -> None:
  if not _LABELS.value:
    raise errors.ConfigError('tell needs --labels=FILE (.csv/.jsonl with '
                             'id,label, or a Label Studio .json export).')
  campaign = _open(workdir)
  names = campaign.pool.class_names
  answers = (annotate.read_label_studio(_LABELS.value, names)
             if _LABELS.value.endswith('.json') else
             annotate.read_answers(_LABELS.value, names))
  if not answers:
    raise errors.ConfigError(f'{_LABELS.value} holds no answers; fill in the '
                             'label column first.')
  # Answers an earlier `tell` recorded (one interrupted, say) are skipped.
  batch = campaign.open_batch()
  labeled = set(campaign.labeled_ids)
  told = set(batch.answered) if batch is not None else set()
  answers = [(i, v) for i, v in answers if i not in told and i not in labeled]
  if not answers:
    print(f'every answer in {_LABELS.value} was already told; '
          f'{len(campaign.records)} models trained. Next: ask.')
    return
  record = campaign.tell([i for i, _ in answers], [label for _, label in
                                                   answers])
  _print_record(record, campaign)


def status(workdir: str) -> None:
  campaign = _open(workdir)
  info = campaign.status()
  print(f"{info['num_labeled']} of {info['num_items']} items labeled "
        f"(budget {info['budget']}); {info['rounds_trained']} models trained")
  print('labels per class: ' + ', '.join(
      f'{name} {count}' for name, count in info['class_counts'].items()))
  if info['open_batch']:
    print(f"open batch: {info['open_batch']['answered']} of "
          f"{info['open_batch']['size']} answered")
  for labeled, accuracy in info['accuracy_curve']:
    if accuracy is not None:
      print(f'  {labeled:6d} labels  test accuracy {accuracy:.4f}')
  for name, value in info.get('stopping', {}).items():
    print(f'stopping rule {name}: ' + ('not yet' if value is None else
                                      f'fired at round {value}'))


def label(workdir: str) -> None:
  campaign = _open(workdir)
  batch = campaign.ask(_N.value)
  remaining = [item for item in campaign.items(batch)
               if item.id not in batch.answered]
  images = campaign.pool.images
  answers = labelers.terminal(
      remaining, campaign.pool.class_names,
      images=[images[i] for i, item in zip(batch.indices, batch.ids)
              if item not in batch.answered])
  if answers:
    record = campaign.tell([i for i, _ in answers], [v for _, v in answers])
    _print_record(record, campaign)


def main(argv):
  if len(argv) != 2 or argv[1] not in COMMANDS:
    cli.fail(f'usage: python experiments/label.py --workdir=DIR '
             f'{{{"|".join(COMMANDS)}}} [flags]; got {argv[1:]}.')
  cli.use_compilation_cache(_CACHE.value, _WORKDIR.value)
  {'create': create, 'ask': ask, 'tell': tell, 'status': status,
   'label': label}[argv[1]](_WORKDIR.value)


if __name__ == '__main__':
  cli.run(main, positional_arguments=True)
