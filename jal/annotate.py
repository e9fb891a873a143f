"""Batches to and from people and annotation tools, keyed by stable item ids.

A batch is a list of `BatchItem`s (an item's external id, its image path, the
acquisition score and the model's predicted class). It travels out as

- a CSV or JSONL file (`write_batch`) with columns `id, path, score,
  prediction, label`, `label` left empty for a person to fill;
- Label Studio tasks (`label_studio_tasks`, `write_label_studio_tasks`) for a
  project made with `label_config(class_names)`;

and comes back as `(id, class index)` pairs, through `read_answers` (the same
CSV/JSONL with `label` filled, or a minimal `id,label` file) or
`read_label_studio` (Label Studio's JSON or JSON_MIN export). Readers check a
whole file and raise one `ConfigError` listing every problem with where it is.

Answers name a class by its name, or by its index in `class_names`. Indices are
accepted only when no class name is itself an integer: with classes named
'3' and '5', '0' would be ambiguous, so it is refused rather than guessed.
"""

import csv
import datetime
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from typing import NamedTuple
from urllib import parse
from xml.sax import saxutils

from jal import checkpoint
from jal import errors

COLUMNS = ('id', 'path', 'score', 'prediction', 'label')
# Names in the labeling config that `label_config` writes and tasks refer to.
IMAGE_NAME = 'image'
CHOICE_NAME = 'choice'
# Key under which a task's data carries our id a second time: Label Studio's
# JSON_MIN export replaces `id` in the data with its own task id.
ID_COPY_KEY = 'jal_id'
_MAX_LISTED = 20


class BatchItem(NamedTuple):
  """One item of a batch sent for labeling.

  Attributes:
    id: the item's stable external id (relative path or manifest id).
    path: the item's image file, or None for a features pool.
    score: the acquisition score the strategy gave the item.
    prediction: the class name the current model predicts.
  """
  id: str
  path: str | None
  score: float
  prediction: str


def _raise(problems: list[str], source: str, what_to_do: str):
  listed = problems[:_MAX_LISTED]
  more = len(problems) - len(listed)
  tail = f'; and {more} more' if more > 0 else ''
  raise errors.ConfigError(
      f'{source} has {len(problems)} problem(s): {"; ".join(listed)}{tail}. '
      f'{what_to_do}')


def _indices_allowed(class_names: Sequence[str]) -> bool:
  """Whether answers may name a class by index: no class name is an integer."""
  return not any(str(name).strip().lstrip('-').isdigit()
                 for name in class_names)


def class_index(label, class_names: Sequence[str]) -> int | None:
  """The class index an answer names, or None when it names none.

  Args:
    label: a class name, or an index (int or decimal string) when no class
      name is itself an integer.
    class_names: the C class names.
  """
  if isinstance(label, bool):
    return None
  if isinstance(label, str):
    text = label.strip()
    if text in class_names:
      return list(class_names).index(text)
    if not text.isdigit():
      return None
    label = int(text)
  if isinstance(label, int) and _indices_allowed(class_names):
    return label if 0 <= label < len(class_names) else None
  return None


def unknown_class(label, class_names: Sequence[str]) -> str:
  """Says that `label` names no class, and which answers would."""
  indices = (f'; or an index 0..{len(class_names) - 1}'
             if _indices_allowed(class_names) else '')
  return (f'unknown class {label!r} (classes: {", ".join(class_names)}'
          f'{indices})')


def _extension(path: str) -> str:
  ext = os.path.splitext(str(path))[1].lower()
  if ext not in ('.csv', '.jsonl'):
    got = repr(ext) if ext else 'no extension'
    raise errors.ConfigError(
        f'{path}: a batch file must end in .csv or .jsonl (got {got}). Rename '
        'it.')
  return ext


def _finite_or_none(score) -> float | None:
  score = float(score)
  return score if math.isfinite(score) else None


def write_batch(items: Iterable[BatchItem], path: str) -> None:
  """Writes a batch for a person to label, as CSV or JSONL by `path`'s end.

  Columns `id, path, score, prediction, label`, one row per item in the given
  order, `label` empty (CSV) or null (JSONL). A missing `path` is written
  empty (CSV) or null (JSONL), as is a JSONL score that is not finite. The file
  is replaced atomically.

  Raises:
    ConfigError: `path` ends in neither .csv nor .jsonl, or cannot be written.
  """
  ext = _extension(path)
  items = [BatchItem(*item) for item in items]
  if ext == '.csv':
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(COLUMNS)
    for item in items:
      writer.writerow([item.id, item.path or '', repr(float(item.score)),
                       item.prediction, ''])
    text = buffer.getvalue()
  else:
    text = ''.join(
        json.dumps({'id': item.id, 'path': item.path,
                    'score': _finite_or_none(item.score),
                    'prediction': item.prediction, 'label': None}) + '\n'
        for item in items)
  try:
    checkpoint.atomic_write(str(path), text.encode('utf-8'))
  except OSError as e:
    raise errors.ConfigError(
        f'Cannot write the batch file {path} ({e.strerror or e}). Check that '
        'its folder exists and is writable.') from None


def _csv_rows(path: str, text: str, problems: list[str]):
  """(line number, id, label) of each CSV row; header problems are final."""
  reader = csv.DictReader(io.StringIO(text))
  header = [name.strip() for name in (reader.fieldnames or [])]
  if not header:
    _raise(['it is empty (no header line)'], path,
           'Write a header line `id,label` and one row per answer.')
  missing = [name for name in ('id', 'label') if name not in header]
  if missing:
    _raise([f'the header (line 1: {",".join(header)}) lacks the column(s) '
            f'{", ".join(missing)}'], path,
           'The first line must name the columns, with at least id and label.')
  reader.fieldnames = header
  rows = []
  try:
    for row in reader:
      if None in row:
        problems.append(f'line {reader.line_num}: more fields than the header '
                        'has columns (a comma inside a value needs quotes)')
      rows.append((reader.line_num, row.get('id'), row.get('label')))
  except csv.Error as e:
    problems.append(f'line {reader.line_num}: {e}')
  return rows


def _jsonl_rows(text: str, problems: list[str]):
  """(line number, id, label) of each JSONL object; missing keys are noted."""
  rows = []
  for number, line in enumerate(text.splitlines(), start=1):
    if not line.strip():
      continue
    try:
      row = json.loads(line)
    except ValueError as e:
      problems.append(f'line {number}: not JSON ({e})')
      continue
    if not isinstance(row, dict):
      problems.append(f'line {number}: a JSON {type(row).__name__}, not an '
                      'object with id and label')
      continue
    missing = [key for key in ('id', 'label') if key not in row]
    if missing:
      problems.append(f'line {number}: no {" or ".join(missing)} field')
      continue
    rows.append((number, row['id'], row['label']))
  return rows


def _item_id(value) -> str | None:
  """Our id as text; ints are accepted (a tool may write "17" as 17)."""
  if isinstance(value, str):
    return value.strip() or None
  if isinstance(value, int) and not isinstance(value, bool):
    return str(value)
  return None


def read_answers(path: str,
                 class_names: Sequence[str]) -> list[tuple[str, int]]:
  """Reads a person's answers from a CSV or JSONL batch file.

  The file is the one `write_batch` wrote with `label` filled, or any file
  with at least the columns (CSV header, JSONL keys) `id` and `label`; other
  columns are ignored. A label is a class name or a class index (see the
  module docstring). Rows whose label is empty (or null) are unanswered and
  left out, so a partly labeled batch can be read.

  Args:
    path: a .csv (UTF-8, with a header line; a byte-order mark is allowed) or
      .jsonl (one JSON object a line) file.
    class_names: the C class names of the pool.

  Returns:
    The answered `(id, class index)` pairs in file order.

  Raises:
    ConfigError: the file is unreadable or lacks the id/label columns, or
      rows have no id, unknown classes or ids seen before; every problem is
      listed with its line number.
  """
  class_names = tuple(class_names)
  ext = _extension(path)
  try:
    with open(path, encoding='utf-8-sig', newline='') as f:
      text = f.read()
  except (OSError, UnicodeDecodeError) as e:
    reason = e.strerror if isinstance(e, OSError) else 'not UTF-8 text'
    raise errors.ConfigError(
        f'Cannot read the answers file {path} ({reason or e}). Give the path '
        'of the labeled CSV or JSONL batch file.') from None
  problems = []
  rows = (_csv_rows(path, text, problems) if ext == '.csv'
          else _jsonl_rows(text, problems))
  answers, first_line = [], {}
  for line, raw_id, raw_label in rows:
    item_id = _item_id(raw_id)
    empty_label = raw_label is None or (
        isinstance(raw_label, str) and not raw_label.strip())
    if item_id is None:
      if not empty_label:
        problems.append(f'line {line}: no id (got {raw_id!r})')
      continue
    if item_id in first_line:
      problems.append(f'line {line}: id {item_id!r} already on line '
                      f'{first_line[item_id]}')
      continue
    first_line[item_id] = line
    if empty_label:
      continue
    index = class_index(raw_label, class_names)
    if index is None:
      problems.append(f'line {line} (id {item_id!r}): '
                      + unknown_class(raw_label, class_names))
      continue
    answers.append((item_id, index))
  if problems:
    _raise(problems, path, 'Fix those rows and read the file again; nothing '
           'from it was used.')
  return answers


def label_config(class_names: Sequence[str]) -> str:
  """The Label Studio labeling config that matches `label_studio_tasks`.

  One image (`$image`) and one required single choice named `choice` with a
  `<Choice>` per class, in class order. Paste it in the project's Settings →
  Labeling Interface → Code.
  """
  choices = ''.join(f'    <Choice value={saxutils.quoteattr(str(name))}/>\n'
                    for name in class_names)
  return (f'<View>\n'
          f'  <Image name="{IMAGE_NAME}" value="${IMAGE_NAME}"/>\n'
          f'  <Choices name="{CHOICE_NAME}" toName="{IMAGE_NAME}" '
          f'choice="single" showInline="true" required="true">\n'
          f'{choices}'
          f'  </Choices>\n'
          f'</View>\n')


def _image_url(path: str, image_root: str | None, url_prefix: str) -> str:
  if image_root is not None:
    relative = os.path.relpath(os.path.abspath(path),
                               os.path.abspath(image_root))
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
      raise ValueError(f'{path} is outside image_root {image_root}')
    path = relative
  path = path.replace(os.sep, '/')
  return url_prefix + parse.quote(path, safe='/') if url_prefix else path


def label_studio_tasks(items: Iterable[BatchItem], class_names: Sequence[str],
                       *, image_root: str | None = None,
                       url_prefix: str = '/data/local-files/?d=',
                       model_version: str = 'jal') -> list[dict]:
  """Label Studio tasks for a batch, one per item, with the model's guess.

  Each task is Label Studio's import format:
  `{"data": {"image": URL, "id": ITEM_ID, "jal_id": ITEM_ID},
    "predictions": [{"model_version": ..., "score": SCORE, "result": [
      {"id": ..., "from_name": "choice", "to_name": "image",
       "type": "choices", "value": {"choices": [PREDICTED_CLASS]}}]}]}`.
  `data.id` is our stable key (Label Studio's own task id is not ours);
  `data.jal_id` repeats it because Label Studio's JSON_MIN export overwrites
  `id`. Label Studio shows the prediction as a pre-annotation and lets the
  Data Manager sort tasks by `score`, the acquisition score. A score that is
  not finite is left out (JSON has no NaN or infinity).

  Args:
    items: the batch.
    class_names: the C class names (the project's `label_config`).
    image_root: when given, image URLs use each path relative to it (Label
      Studio's local files serve paths relative to its
      LOCAL_FILES_DOCUMENT_ROOT or a storage's folder).
    url_prefix: put before the (percent-encoded) relative path; the default
      is Label Studio's local-files URL. '' writes the path as it is.
    model_version: the predictions' `model_version`.

  Returns:
    The tasks, in the batch's order; `json.dump` them to a file and import it.

  Raises:
    ConfigError: items without an image path, with a path outside
      `image_root`, or with a prediction that is not a class name.
  """
  class_names = tuple(class_names)
  tasks, problems = [], []
  for number, item in enumerate(items, start=1):
    item = BatchItem(*item)
    if item.path is None:
      problems.append(f'item {number} ({item.id!r}) has no image path')
      continue
    try:
      url = _image_url(str(item.path), image_root, url_prefix)
    except ValueError as e:
      problems.append(f'item {number} ({item.id!r}): {e}')
      continue
    if item.prediction not in class_names:
      problems.append(f'item {number} ({item.id!r}): prediction '
                      + unknown_class(item.prediction, class_names))
      continue
    prediction = {
        'model_version': model_version,
        'result': [{'id': f'jal-{number}', 'from_name': CHOICE_NAME,
                    'to_name': IMAGE_NAME, 'type': 'choices',
                    'value': {'choices': [item.prediction]}}],
    }
    score = _finite_or_none(item.score)
    if score is not None:
      prediction['score'] = score
    tasks.append({'data': {IMAGE_NAME: url, 'id': item.id,
                           ID_COPY_KEY: item.id},
                  'predictions': [prediction]})
  if problems:
    _raise(problems, 'The batch', 'Label Studio tasks need image files, '
           'paths under image_root and predicted class names.')
  return tasks


def write_label_studio_tasks(items: Iterable[BatchItem],
                             class_names: Sequence[str], path: str,
                             **kwargs) -> list[dict]:
  """Writes `label_studio_tasks(items, class_names, **kwargs)` to a JSON file.

  Returns:
    The tasks written.

  Raises:
    ConfigError: as `label_studio_tasks`, or `path` cannot be written.
  """
  tasks = label_studio_tasks(items, class_names, **kwargs)
  try:
    checkpoint.atomic_write(str(path),
                            json.dumps(tasks, indent=2).encode('utf-8'))
  except OSError as e:
    raise errors.ConfigError(
        f'Cannot write the Label Studio tasks {path} ({e.strerror or e}). '
        'Check that its folder exists and is writable.') from None
  return tasks


def _timestamp(record: dict) -> datetime.datetime | None:
  """When an annotation was last changed (`updated_at`, else `created_at`)."""
  for key in ('updated_at', 'created_at'):
    value = record.get(key)
    if isinstance(value, str):
      try:
        stamp = datetime.datetime.fromisoformat(value.replace('Z', '+00:00'))
      except ValueError:
        continue
      if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
      return stamp
  return None


def _recency(order: int, record: dict):
  """Sort key: latest change time (missing = oldest), then listing order."""
  oldest = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
  return (_timestamp(record) or oldest, order)


def _choices_of(result: list, where: str, problems: list[str]) -> list[str]:
  """The chosen values in an annotation's `result` list."""
  chosen = []
  for region in result if isinstance(result, list) else []:
    if not isinstance(region, dict) or region.get('type') != 'choices':
      continue
    value = region.get('value')
    values = value.get('choices') if isinstance(value, dict) else None
    if not isinstance(values, list):
      problems.append(f'{where}: a choices result without value.choices')
      continue
    chosen.extend(values)
  return chosen


def _answer(chosen: list, where: str, class_names, problems) -> int | None:
  if len(set(map(str, chosen))) > 1:
    problems.append(f'{where}: several classes chosen '
                    f'({", ".join(map(str, chosen))}); one class an image')
    return None
  if not isinstance(chosen[0], str) or chosen[0] not in class_names:
    problems.append(f'{where}: ' + unknown_class(chosen[0], class_names))
    return None
  return list(class_names).index(chosen[0])


def _full_export(tasks: list, class_names, problems):
  """(our id, class index, where) from Label Studio's JSON export."""
  answers = []
  for number, task in enumerate(tasks, start=1):
    ls_id = task.get('id')
    where = f'task {number}' + (f' (Label Studio id {ls_id})'
                                if ls_id is not None else '')
    data = task.get('data')
    item_id = None
    if isinstance(data, dict):
      item_id = _item_id(data.get(ID_COPY_KEY, data.get('id')))
    if item_id is None:
      problems.append(f'{where}: its data has no id (the tasks were not made '
                      'by label_studio_tasks)')
      continue
    where += f' id {item_id!r}'
    annotations = task.get('annotations', task.get('completions')) or []
    if not isinstance(annotations, list):
      problems.append(f'{where}: annotations is not a list')
      continue
    answered = []
    for order, annotation in enumerate(annotations):
      if not isinstance(annotation, dict):
        problems.append(f'{where}: annotation {order + 1} is not an object')
        continue
      if annotation.get('was_cancelled') or annotation.get('skipped'):
        continue
      chosen = _choices_of(annotation.get('result'), where, problems)
      if chosen:
        answered.append((order, annotation, chosen))
    if not answered:
      continue
    newest = max(answered, key=lambda a: _recency(a[0], a[1]))
    index = _answer(newest[2], where, class_names, problems)
    if index is not None:
      answers.append((item_id, index, where))
  return answers


def _min_export(records: list, class_names, problems):
  """(our id, class index, where) from Label Studio's JSON_MIN export."""
  by_id = {}
  for number, record in enumerate(records, start=1):
    ls_id = record.get('id')
    where = f'record {number}' + (f' (Label Studio task {ls_id})'
                                  if ls_id is not None else '')
    item_id = _item_id(record.get(ID_COPY_KEY))
    if item_id is None:
      problems.append(f'{where}: no {ID_COPY_KEY} (JSON_MIN replaces the '
                      "data's id with Label Studio's; make tasks with "
                      'label_studio_tasks, or export as JSON)')
      continue
    where += f' id {item_id!r}'
    value = record.get(CHOICE_NAME)
    if value is None:
      continue
    if isinstance(value, dict):
      chosen = value.get('choices')
    elif isinstance(value, list):
      chosen = [v for entry in value for v in (
          entry.get('choices', []) if isinstance(entry, dict) else [entry])]
    else:
      chosen = [value]
    if not isinstance(chosen, list) or not chosen:
      problems.append(f'{where}: {CHOICE_NAME} is {value!r}, not a class')
      continue
    # JSON_MIN lists a task's annotations newest first: earlier = more recent.
    by_id.setdefault(item_id, []).append(
        (-number, record, chosen, where, ls_id))
  answers = []
  for item_id, entries in by_id.items():
    tasks = {e[4] for e in entries}
    if len(tasks) > 1:
      problems.append(f'id {item_id!r} is in several Label Studio tasks '
                      f'({", ".join(map(str, sorted(tasks, key=str)))})')
      continue
    newest = max(entries, key=lambda e: _recency(e[0], e[1]))
    index = _answer(newest[2], newest[3], class_names, problems)
    if index is not None:
      answers.append((item_id, index, newest[3]))
  return answers


def read_label_studio(path: str,
                      class_names: Sequence[str]) -> list[tuple[str, int]]:
  """Reads the answers in a Label Studio export made from our tasks.

  Accepted: the "JSON" export (a list of tasks, each with `data` holding our
  id and `annotations`, each with `result` regions), or a single task object;
  and the "JSON_MIN" export (a list of flat objects holding the task's data
  fields, Label Studio's task `id`, and the choice under the control's name
  `choice`: a class name, or `{"choices": [...]}`). In JSON, our id is
  `data.jal_id`, else `data.id`; in JSON_MIN it must be `jal_id` (there `id`
  is Label Studio's task id).

  Which answer counts: annotations that were cancelled (skipped) or hold no
  choice are ignored, and so are tasks left without one. When a task has
  several, the most recently changed one counts: latest `updated_at` (else
  `created_at`); on equal or missing times, the last listed in JSON and the
  first listed in JSON_MIN (which lists a task's annotations newest first).
  Predictions in the export are the model's, never answers.

  Args:
    path: the exported .json file.
    class_names: the C class names of the pool.

  Returns:
    `(id, class index)` pairs, one per answered task, in export order.

  Raises:
    ConfigError: the file is unreadable or not such an export; tasks without
      our id; unknown or several classes chosen; an id in several tasks.
      Every problem is listed.
  """
  class_names = tuple(class_names)
  try:
    with open(path, encoding='utf-8-sig') as f:
      export = json.load(f)
  except (OSError, UnicodeDecodeError, ValueError) as e:
    reason = e.strerror if isinstance(e, OSError) else str(e)
    raise errors.ConfigError(
        f'Cannot read the Label Studio export {path} ({reason}). Export the '
        'project as JSON (or JSON_MIN) and give that file.') from None
  if isinstance(export, dict):
    export = [export]
  if not isinstance(export, list) or not all(
      isinstance(task, dict) for task in export):
    raise errors.ConfigError(
        f'{path} is not a Label Studio export (expected a JSON list of task '
        'objects). Export the project as JSON (or JSON_MIN).')
  problems = []
  is_full = any('data' in task or 'annotations' in task for task in export)
  if is_full:
    found = _full_export(export, class_names, problems)
  else:
    found = _min_export(export, class_names, problems)
  first_where = {}
  for item_id, _, where in found:
    if item_id in first_where:
      problems.append(f'{where}: id {item_id!r} also in {first_where[item_id]} '
                      '(the batch was imported twice?)')
    else:
      first_where[item_id] = where
  if problems:
    _raise(problems, path, 'Fix those tasks in Label Studio (or delete the '
           'duplicates) and export again; nothing from the file was used.')
  return [(item_id, index) for item_id, index, _ in found]
