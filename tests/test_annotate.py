"""Batch files and Label Studio round trips (jal.annotate).

The Label Studio samples follow the formats its documentation shows: import
tasks with `data` and `predictions` (a `choices` result, `score`,
`model_version`), the JSON export (tasks with `id`, `data`, `annotations` with
`result`, `was_cancelled`, `completed_by`, times, and the `predictions`), and
the JSON_MIN export (flat records, one per annotation, newest first).
"""

import csv
import json
import math
import os
import xml.etree.ElementTree as ElementTree

import pytest

from jal import annotate
from jal import errors

CLASSES = ('cat', 'dog', 'bird')
ITEMS = [
    annotate.BatchItem('unlabeled/a.png', '/data/pets/unlabeled/a.png', 0.91,
                       'cat'),
    annotate.BatchItem('unlabeled/b c.png', '/data/pets/unlabeled/b c.png',
                       0.5, 'dog'),
    annotate.BatchItem('unlabeled/sub/d.png', '/data/pets/unlabeled/sub/d.png',
                       0.125, 'bird'),
]


def _write(path, text):
  with open(path, 'w', encoding='utf-8') as f:
    f.write(text)
  return str(path)


# CSV and JSONL batch files.


def test_csv_batch_is_written_with_an_empty_label_column(tmp_path):
  path = str(tmp_path / 'batch.csv')
  annotate.write_batch(ITEMS, path)
  with open(path, newline='') as f:
    rows = list(csv.reader(f))
  assert rows[0] == ['id', 'path', 'score', 'prediction', 'label']
  assert rows[2] == ['unlabeled/b c.png', '/data/pets/unlabeled/b c.png',
                     '0.5', 'dog', '']
  assert len(rows) == 4


def test_csv_round_trip_as_a_person_fills_it(tmp_path):
  path = str(tmp_path / 'batch.csv')
  annotate.write_batch(ITEMS, path)
  with open(path, newline='') as f:
    rows = list(csv.DictReader(f))
  rows[0]['label'] = 'dog'  # by name
  rows[1]['label'] = ''     # not answered yet
  rows[2]['label'] = ' 2 '  # by index, with stray spaces
  labeled = str(tmp_path / 'batch_labeled.csv')
  with open(labeled, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  assert annotate.read_answers(labeled, CLASSES) == [
      ('unlabeled/a.png', 1), ('unlabeled/sub/d.png', 2)]


def test_jsonl_round_trip(tmp_path):
  path = str(tmp_path / 'batch.jsonl')
  annotate.write_batch(ITEMS + [annotate.BatchItem('x', None, math.inf, 'cat')],
                       path)
  with open(path) as f:
    rows = [json.loads(line) for line in f]
  assert rows[0] == {'id': 'unlabeled/a.png',
                     'path': '/data/pets/unlabeled/a.png', 'score': 0.91,
                     'prediction': 'cat', 'label': None}
  assert rows[3]['path'] is None and rows[3]['score'] is None
  rows[0]['label'] = 'bird'
  rows[1]['label'] = 0
  rows[3]['label'] = ''
  _write(path, ''.join(json.dumps(row) + '\n' for row in rows) + '\n')
  assert annotate.read_answers(path, CLASSES) == [
      ('unlabeled/a.png', 2), ('unlabeled/b c.png', 0)]


def test_minimal_id_label_csv_from_a_spreadsheet(tmp_path):
  path = _write(tmp_path / 'answers.csv',
                '\ufeffid,label\r\nunlabeled/a.png,cat\r\n,\r\n17,bird\r\n')
  assert annotate.read_answers(path, CLASSES) == [('unlabeled/a.png', 0),
                                                  ('17', 2)]


def test_indices_are_refused_when_class_names_are_integers(tmp_path):
  path = _write(tmp_path / 'a.csv', 'id,label\nx,5\ny,0\n')
  assert annotate.read_answers(path, ('0', '1', '5'))[0] == ('x', 2)
  with pytest.raises(errors.ConfigError, match="line 3.*unknown class '0'"):
    annotate.read_answers(path, ('3', '5'))


def test_every_problem_in_an_answers_file_is_listed_with_its_line(tmp_path):
  path = _write(tmp_path / 'a.csv',
                'id,label\n'
                'a,cat\n'
                'b,zebra\n'   # line 3: unknown class
                'a,dog\n'     # line 4: repeated id
                ',dog\n'      # line 5: no id
                'c,7\n')      # line 6: index out of range
  with pytest.raises(errors.ConfigError) as raised:
    annotate.read_answers(path, CLASSES)
  message = str(raised.value)
  assert '4 problem(s)' in message
  assert "line 3 (id 'b'): unknown class 'zebra' (classes: cat, dog, bird" in (
      message)
  assert "line 4: id 'a' already on line 2" in message
  assert 'line 5: no id' in message
  assert "line 6 (id 'c'): unknown class '7'" in message


def test_jsonl_problems_are_listed_with_their_lines(tmp_path):
  path = _write(tmp_path / 'a.jsonl',
                '{"id": "a", "label": "cat"}\n'
                '{"id": "b"}\n'
                'not json\n'
                '[1, 2]\n'
                '{"id": "a", "label": 1}\n'
                '{"id": "c", "label": true}\n')
  with pytest.raises(errors.ConfigError) as raised:
    annotate.read_answers(path, CLASSES)
  message = str(raised.value)
  for expected in ('line 2: no label field', 'line 3: not JSON',
                   'line 4: a JSON list', "line 5: id 'a' already on line 1",
                   "line 6 (id 'c'): unknown class True"):
    assert expected in message


@pytest.mark.parametrize('header', ['id,answer', 'name,label', 'path'])
def test_answers_without_id_or_label_columns_are_refused(tmp_path, header):
  path = _write(tmp_path / 'a.csv', f'{header}\nx,cat\n')
  with pytest.raises(errors.ConfigError, match='lacks the column'):
    annotate.read_answers(path, CLASSES)


def test_unreadable_answer_files_are_refused(tmp_path):
  with pytest.raises(errors.ConfigError, match='Cannot read'):
    annotate.read_answers(str(tmp_path / 'missing.csv'), CLASSES)
  latin1 = tmp_path / 'latin1.csv'
  latin1.write_bytes('id,label\ncaf\xe9,cat\n'.encode('latin-1'))
  with pytest.raises(errors.ConfigError, match='not UTF-8'):
    annotate.read_answers(str(latin1), CLASSES)
  with pytest.raises(errors.ConfigError, match='empty'):
    annotate.read_answers(_write(tmp_path / 'empty.csv', ''), CLASSES)
  with pytest.raises(errors.ConfigError, match=r'\.csv or \.jsonl'):
    annotate.read_answers(_write(tmp_path / 'a.xlsx', 'id,label\n'), CLASSES)
  with pytest.raises(errors.ConfigError, match='Cannot write'):
    annotate.write_batch(ITEMS, str(tmp_path / 'no_such_dir' / 'b.csv'))


def test_header_only_file_has_no_answers(tmp_path):
  assert annotate.read_answers(_write(tmp_path / 'a.csv', 'id,label\n'),
                               CLASSES) == []


# Label Studio tasks and labeling config.


def test_label_config_lists_every_class_as_a_choice():
  names = ('cat', 'dog & "friends"', '<bird>')
  view = ElementTree.fromstring(annotate.label_config(names))
  image = view.find('Image')
  choices = view.find('Choices')
  assert image.get('name') == 'image' and image.get('value') == '$image'
  assert choices.get('name') == 'choice' and choices.get('toName') == 'image'
  assert choices.get('choice') == 'single'
  assert [c.get('value') for c in choices.findall('Choice')] == list(names)


def test_tasks_carry_our_id_image_url_and_the_scored_prediction():
  tasks = annotate.label_studio_tasks(ITEMS, CLASSES,
                                      image_root='/data/pets')
  assert tasks[1] == {
      'data': {'image': '/data/local-files/?d=unlabeled/b%20c.png',
               'id': 'unlabeled/b c.png', 'jal_id': 'unlabeled/b c.png'},
      'predictions': [{
          'model_version': 'jal', 'score': 0.5,
          'result': [{'id': 'jal-2', 'from_name': 'choice',
                      'to_name': 'image', 'type': 'choices',
                      'value': {'choices': ['dog']}}]}],
  }
  assert tasks[2]['data']['image'] == '/data/local-files/?d=unlabeled/sub/d.png'
  json.dumps(tasks, allow_nan=False)


def test_task_urls_without_root_or_prefix():
  no_root = annotate.label_studio_tasks(ITEMS[:1], CLASSES,
                                        url_prefix='http://h/img')
  assert no_root[0]['data']['image'] == 'http://h/img/data/pets/unlabeled/a.png'
  as_is = annotate.label_studio_tasks(ITEMS[1:2], CLASSES, url_prefix='')
  assert as_is[0]['data']['image'] == '/data/pets/unlabeled/b c.png'


def test_task_without_finite_score_leaves_score_out():
  item = ITEMS[0]._replace(score=float('nan'))
  prediction = annotate.label_studio_tasks([item], CLASSES)[0]['predictions'][0]
  assert 'score' not in prediction


def test_tasks_refuse_items_they_cannot_show(tmp_path):
  items = [ITEMS[0]._replace(path=None), ITEMS[1]._replace(prediction='cow'),
           ITEMS[2]._replace(path='/elsewhere/d.png')]
  with pytest.raises(errors.ConfigError) as raised:
    annotate.label_studio_tasks(items, CLASSES, image_root='/data/pets')
  message = str(raised.value)
  assert '3 problem(s)' in message
  assert "item 1 ('unlabeled/a.png') has no image path" in message
  assert "prediction unknown class 'cow'" in message
  assert 'outside image_root' in message


def test_written_tasks_are_json_label_studio_can_import(tmp_path):
  path = str(tmp_path / 'tasks.json')
  tasks = annotate.write_label_studio_tasks(ITEMS, CLASSES, path,
                                            image_root='/data/pets',
                                            model_version='round-3')
  with open(path) as f:
    assert json.load(f) == tasks
  assert tasks[0]['predictions'][0]['model_version'] == 'round-3'


# Label Studio exports.


def _imported(tasks, first_id=101):
  """What Label Studio stores for imported tasks (its ids, times, project)."""
  stored = []
  for offset, task in enumerate(tasks):
    predictions = [dict(p, id=900 + offset, task=first_id + offset,
                        created_ago='2 hours', cluster=None, neighbors=None,
                        mislabeling=0.0)
                   for p in task['predictions']]
    stored.append({'id': first_id + offset, 'data': task['data'],
                   'annotations': [], 'predictions': predictions,
                   'drafts': [], 'meta': {}, 'project': 7,
                   'created_at': '2026-11-20T09:00:00.000000Z',
                   'updated_at': '2026-11-20T09:00:00.000000Z',
                   'inner_id': offset + 1, 'total_annotations': 0,
                   'cancelled_annotations': 0, 'total_predictions': 1,
                   'comment_count': 0, 'unresolved_comment_count': 0,
                   'last_comment_updated_at': None, 'updated_by': [],
                   'file_upload': 'tasks.json', 'comment_authors': []})
  return stored


def _annotation(annotation_id, choice, *, when, cancelled=False, user=1):
  result = [] if choice is None else [{
      'id': f'r{annotation_id}', 'type': 'choices', 'origin': 'manual',
      'from_name': 'choice', 'to_name': 'image',
      'value': {'choices': [choice]}}]
  return {'id': annotation_id, 'completed_by': user, 'result': result,
          'was_cancelled': cancelled, 'ground_truth': False,
          'created_at': when, 'updated_at': when, 'draft_created_at': None,
          'lead_time': 3.25, 'prediction': {}, 'result_count': len(result),
          'unique_id': f'u-{annotation_id}', 'import_id': None,
          'last_action': None, 'bulk_created': False, 'task': None,
          'project': 7, 'updated_by': user, 'parent_prediction': 900,
          'parent_annotation': None, 'last_created_by': None}


def test_label_studio_round_trip(tmp_path):
  tasks = _imported(annotate.label_studio_tasks(ITEMS, CLASSES,
                                                image_root='/data/pets'))
  # The annotator corrects the first, accepts the third, skips the second.
  tasks[0]['annotations'] = [_annotation(1, 'bird',
                                         when='2026-11-21T10:00:00Z')]
  tasks[1]['annotations'] = [_annotation(2, None, cancelled=True,
                                         when='2026-11-21T10:01:00Z')]
  tasks[2]['annotations'] = [_annotation(3, 'bird',
                                         when='2026-11-21T10:02:00Z')]
  path = _write(tmp_path / 'project-7-at-2026-11-21.json', json.dumps(tasks))
  assert annotate.read_label_studio(path, CLASSES) == [
      ('unlabeled/a.png', 2), ('unlabeled/sub/d.png', 2)]


# A JSON export as Label Studio writes it: task 11 has two annotations, the
# newer (by updated_at) listed first, and the model's prediction; task 12 was
# answered by one person and skipped later (after a choice) by another;
# task 13 has no annotation; task 14 only a cancelled one.
SAMPLE_EXPORT = '''[
  {"id": 11, "data": {"image": "/data/local-files/?d=unlabeled/a.png",
                      "id": "unlabeled/a.png", "jal_id": "unlabeled/a.png"},
   "annotations": [
     {"id": 31, "completed_by": 2, "result": [{"value": {"choices": ["dog"]},
       "id": "Xk2pQ0aB1c", "from_name": "choice", "to_name": "image",
       "type": "choices", "origin": "manual"}],
      "was_cancelled": false, "ground_truth": false,
      "created_at": "2026-11-21T09:00:00.000000Z",
      "updated_at": "2026-11-22T08:30:00.123456Z",
      "lead_time": 12.4, "prediction": {}, "result_count": 0, "task": 11,
      "project": 7, "parent_prediction": 51, "parent_annotation": null},
     {"id": 30, "completed_by": 1, "result": [{"value": {"choices": ["cat"]},
       "id": "a9Pq3LmZ0x", "from_name": "choice", "to_name": "image",
       "type": "choices", "origin": "prediction"}],
      "was_cancelled": false, "ground_truth": false,
      "created_at": "2026-11-21T08:00:00.000000Z",
      "updated_at": "2026-11-21T08:00:05.000000Z",
      "lead_time": 4.1, "prediction": {}, "result_count": 0, "task": 11,
      "project": 7, "parent_prediction": 51, "parent_annotation": null}],
   "drafts": [],
   "predictions": [{"id": 51, "model_version": "jal", "created_ago": "1 day",
     "result": [{"id": "jal-1", "from_name": "choice", "to_name": "image",
                 "type": "choices", "value": {"choices": ["cat"]}}],
     "score": 0.91, "cluster": null, "neighbors": null, "mislabeling": 0.0,
     "created_at": "2026-11-20T09:00:00.000000Z",
     "updated_at": "2026-11-20T09:00:00.000000Z", "task": 11, "project": 7}],
   "meta": {}, "created_at": "2026-11-20T09:00:00.000000Z",
   "updated_at": "2026-11-22T08:30:00.123456Z", "inner_id": 1,
   "total_annotations": 2, "cancelled_annotations": 0,
   "total_predictions": 1, "project": 7, "updated_by": 2,
   "file_upload": "tasks.json"},
  {"id": 12, "data": {"image": "/data/local-files/?d=unlabeled/b%20c.png",
                      "id": "unlabeled/b c.png",
                      "jal_id": "unlabeled/b c.png"},
   "annotations": [
     {"id": 32, "completed_by": 1, "result": [{"value": {"choices": ["cat"]},
       "id": "Qw12Er34Ty", "from_name": "choice", "to_name": "image",
       "type": "choices", "origin": "manual"}], "was_cancelled": true,
      "ground_truth": false, "created_at": "2026-11-21T08:01:00.000000Z",
      "updated_at": "2026-11-23T08:01:00.000000Z", "lead_time": 1.0,
      "task": 12, "project": 7},
     {"id": 33, "completed_by": 2, "result": [{"value": {"choices": ["bird"]},
       "id": "Zz81mNq2Lp", "from_name": "choice", "to_name": "image",
       "type": "choices", "origin": "manual"}],
      "was_cancelled": false, "ground_truth": false,
      "created_at": "2026-11-21T09:05:00.000000Z",
      "updated_at": "2026-11-21T09:05:00.000000Z", "lead_time": 6.0,
      "task": 12, "project": 7}],
   "predictions": [], "project": 7, "inner_id": 2},
  {"id": 13, "data": {"image": "/data/local-files/?d=unlabeled/sub/d.png",
                      "id": "unlabeled/sub/d.png",
                      "jal_id": "unlabeled/sub/d.png"},
   "annotations": [], "predictions": [], "project": 7, "inner_id": 3},
  {"id": 14, "data": {"image": "/data/local-files/?d=unlabeled/e.png",
                      "id": "unlabeled/e.png", "jal_id": "unlabeled/e.png"},
   "annotations": [
     {"id": 34, "completed_by": 1, "result": [], "was_cancelled": true,
      "created_at": "2026-11-21T08:02:00Z", "task": 14}],
   "predictions": [], "project": 7, "inner_id": 4}
]'''


def test_sample_export_takes_newest_uncancelled_annotation(tmp_path):
  path = _write(tmp_path / 'export.json', SAMPLE_EXPORT)
  assert annotate.read_label_studio(path, CLASSES) == [
      ('unlabeled/a.png', 1), ('unlabeled/b c.png', 2)]


def test_without_times_the_last_listed_annotation_counts(tmp_path):
  tasks = json.loads(SAMPLE_EXPORT)
  for annotation in tasks[0]['annotations']:
    del annotation['created_at'], annotation['updated_at']
  path = _write(tmp_path / 'export.json', json.dumps(tasks))
  assert annotate.read_label_studio(path, CLASSES)[0] == ('unlabeled/a.png', 0)


def test_a_single_exported_task_object_is_read(tmp_path):
  task = json.loads(SAMPLE_EXPORT)[1]
  path = _write(tmp_path / '12.json', json.dumps(task))
  assert annotate.read_label_studio(path, CLASSES) == [('unlabeled/b c.png', 2)]


# JSON_MIN: one flat record per (non-cancelled) annotation, the task's data
# fields, Label Studio's task id in `id`, and the choice under `choice`.
SAMPLE_JSON_MIN = '''[
  {"image": "/data/local-files/?d=unlabeled/a.png", "id": 11,
   "jal_id": "unlabeled/a.png", "choice": "dog", "annotator": 2,
   "annotation_id": 31, "created_at": "2026-11-21T09:00:00.000000Z",
   "updated_at": "2026-11-22T08:30:00.123456Z", "lead_time": 12.4},
  {"image": "/data/local-files/?d=unlabeled/a.png", "id": 11,
   "jal_id": "unlabeled/a.png", "choice": "cat", "annotator": 1,
   "annotation_id": 30, "created_at": "2026-11-21T08:00:00.000000Z",
   "updated_at": "2026-11-21T08:00:05.000000Z", "lead_time": 4.1},
  {"image": "/data/local-files/?d=unlabeled/b%20c.png", "id": 12,
   "jal_id": "unlabeled/b c.png", "choice": {"choices": ["bird"]},
   "annotator": 2, "annotation_id": 33,
   "created_at": "2026-11-21T09:05:00.000000Z",
   "updated_at": "2026-11-21T09:05:00.000000Z", "lead_time": 6.0},
  {"image": "/data/local-files/?d=unlabeled/sub/d.png", "id": 13,
   "jal_id": "unlabeled/sub/d.png", "annotator": null, "annotation_id": null,
   "created_at": null, "updated_at": null, "lead_time": null}
]'''


def test_sample_json_min_export(tmp_path):
  path = _write(tmp_path / 'export_min.json', SAMPLE_JSON_MIN)
  assert annotate.read_label_studio(path, CLASSES) == [
      ('unlabeled/a.png', 1), ('unlabeled/b c.png', 2)]


def test_json_min_without_our_id_is_refused(tmp_path):
  records = json.loads(SAMPLE_JSON_MIN)
  del records[2]['jal_id']
  path = _write(tmp_path / 'export_min.json', json.dumps(records))
  with pytest.raises(errors.ConfigError,
                     match="record 3 .Label Studio task 12.: no jal_id"):
    annotate.read_label_studio(path, CLASSES)


def test_every_problem_in_an_export_is_listed(tmp_path):
  tasks = json.loads(SAMPLE_EXPORT)
  tasks[0]['annotations'][0]['result'][0]['value']['choices'] = ['wolf']
  del tasks[1]['data']['id'], tasks[1]['data']['jal_id']
  tasks[2]['annotations'] = [_annotation(40, 'cat', when='2026-11-22T00:00Z')]
  tasks[2]['annotations'][0]['result'][0]['value']['choices'] = ['cat', 'dog']
  tasks.append(json.loads(json.dumps(tasks[0])))
  tasks[-1]['id'] = 15
  tasks[-1]['annotations'][0]['result'][0]['value']['choices'] = ['cat']
  tasks[3]['data']['id'] = tasks[3]['data']['jal_id'] = 'unlabeled/a.png'
  tasks[3]['annotations'] = [_annotation(41, 'cat', when='2026-11-22T00:00Z')]
  path = _write(tmp_path / 'export.json', json.dumps(tasks))
  with pytest.raises(errors.ConfigError) as raised:
    annotate.read_label_studio(path, CLASSES)
  message = str(raised.value)
  assert ("task 1 (Label Studio id 11) id 'unlabeled/a.png': unknown class "
          "'wolf'") in message
  assert 'task 2 (Label Studio id 12): its data has no id' in message
  assert "several classes chosen (cat, dog)" in message
  assert ("task 5 (Label Studio id 15) id 'unlabeled/a.png': id "
          "'unlabeled/a.png' also in task 4") in message


@pytest.mark.parametrize('text, match', [
    ('{"not": "closed"', 'Cannot read'),
    ('"a string"', 'not a Label Studio export'),
    ('[1, 2]', 'not a Label Studio export'),
])
def test_unreadable_exports_are_refused(tmp_path, text, match):
  path = _write(tmp_path / 'export.json', text)
  with pytest.raises(errors.ConfigError, match=match):
    annotate.read_label_studio(path, CLASSES)


def test_missing_export_is_refused(tmp_path):
  with pytest.raises(errors.ConfigError, match='Cannot read'):
    annotate.read_label_studio(os.path.join(tmp_path, 'none.json'), CLASSES)
