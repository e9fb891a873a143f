"""Labeling by hand (jal.labelers), headless: scripted replies, no display."""

import io
import sys

import numpy as np
import pytest

from jal import annotate
from jal import errors
from jal import labelers

CLASSES = ('cat', 'dog', 'bird')
BATCH = [annotate.BatchItem(f'u/{k}.png', f'/pool/u/{k}.png', 1.0 - k / 10,
                            CLASSES[k % 3]) for k in range(5)]


def _scripted(replies):
  """An `ask` that answers from a list and records each prompt."""
  replies = list(replies)
  prompts = []

  def ask(prompt):
    prompts.append(prompt)
    if not replies:
      raise EOFError
    return replies.pop(0)

  return ask, prompts


# The terminal labeler.


def test_terminal_takes_names_indices_enter_and_skips():
  ask, prompts = _scripted(['dog', '2', '', 's', ' Cat ', 'cat'])
  shown = []
  answers = labelers.terminal(BATCH, CLASSES, ask=ask, show=shown.append)
  # Item 3's prediction is 'bird' ('' accepts it); ' Cat ' is asked again.
  assert answers == [('u/0.png', 1), ('u/1.png', 2), ('u/2.png', 2),
                     ('u/4.png', 0)]
  assert len(prompts) == 6 and prompts[2] == 'label [bird]: '
  text = '\n'.join(shown)
  assert 'Classes: 0 cat, 1 dog, 2 bird' in text
  assert '[2/5] u/1.png (/pool/u/1.png)' in text
  assert 'model: dog (score 0.9)' in text
  assert "Not an answer: unknown class 'Cat'" in text
  assert '4 labeled, 1 skipped, 0 not reached.' in text


def test_terminal_stops_early_and_keeps_answers():
  ask, prompts = _scripted(['bird', 'q'])
  shown = []
  assert labelers.terminal(BATCH, CLASSES, ask=ask, show=shown.append) == [
      ('u/0.png', 2)]
  assert len(prompts) == 2
  assert '1 labeled, 0 skipped, 4 not reached.' in shown[-1]


def test_terminal_end_of_input_stops():
  ask, _ = _scripted(['1'])
  assert labelers.terminal(BATCH, CLASSES, ask=ask,
                           show=lambda line: None) == [('u/0.png', 1)]


def test_terminal_draws_small_grayscale_images():
  image = np.zeros((4, 4, 1), np.float32)
  image[1:3, 1:3] = 1.0
  ask, _ = _scripted(['cat'])
  shown = []
  labelers.terminal(BATCH[:1], CLASSES, images=[image], ask=ask,
                    show=shown.append)
  assert '\n'.join(['        ', '  @@@@  ', '  @@@@  ', '        ']) in shown
  ask, _ = _scripted(['cat'])
  shown.clear()
  labelers.terminal(BATCH[:1], CLASSES, images={'u/0.png': np.ones((4, 4, 3))},
                    ask=ask, show=shown.append)
  assert not any('@' in line for line in shown)  # colour: not drawn


def test_enter_without_a_class_prediction_is_asked_again():
  item = BATCH[0]._replace(prediction='unknown')
  ask, prompts = _scripted(['', 'dog'])
  assert labelers.terminal([item], CLASSES, ask=ask,
                           show=lambda line: None) == [('u/0.png', 1)]
  assert len(prompts) == 2


def test_parse_answer_prefers_class_names_over_commands():
  assert labelers.parse_answer('s', ('s', 't')) == ('label', 0)
  assert labelers.parse_answer('skip', ('s', 't')) == ('skip', None)
  assert labelers.parse_answer('Q', CLASSES) == ('quit', None)
  assert labelers.parse_answer('3', CLASSES) is None
  assert labelers.parse_answer('', CLASSES, 'dog') == ('label', 1)


def test_ascii_image_averages_large_images_and_scales_to_range():
  image = np.tile(np.arange(64, dtype=np.float32), (64, 1))  # dark → light
  drawing = labelers.ascii_image(image, max_side=16).split('\n')
  assert len(drawing) == 16 and all(len(row) == 32 for row in drawing)
  assert drawing[0][0] == ' ' and drawing[0][-1] == '@'
  assert labelers.ascii_image(np.full((3, 3), 7.0)) == '\n'.join(['      '] * 3)


# The notebook labeler's state, without widgets.


def test_state_set_clear_remaining_and_submit():
  state = labelers.start(BATCH, CLASSES)
  assert labelers.remaining(state) == tuple(item.id for item in BATCH)
  state = labelers.set_answer(state, 'u/3.png', 'bird')
  state = labelers.set_answer(state, 'u/1.png', 0)
  state = labelers.set_answer(state, 'u/3.png', 'dog')  # changed mind
  cleared = labelers.clear_answer(state, 'u/1.png')
  assert labelers.answered(state) == [('u/1.png', 0), ('u/3.png', 1)]
  assert labelers.answered(cleared) == [('u/3.png', 1)]
  assert labelers.remaining(state) == ('u/0.png', 'u/2.png', 'u/4.png')
  closed, answers = labelers.submit(state)
  assert closed.submitted and answers == [('u/1.png', 0), ('u/3.png', 1)]
  assert not state.submitted  # the old state is unchanged
  with pytest.raises(errors.ConfigError, match='already submitted'):
    labelers.set_answer(closed, 'u/0.png', 'cat')
  with pytest.raises(errors.ConfigError, match='already submitted'):
    labelers.submit(closed)


def test_state_refuses_bad_answers_and_partial_when_asked():
  state = labelers.start(BATCH, CLASSES)
  with pytest.raises(errors.ConfigError, match="'u/9.png' is not in this"):
    labelers.set_answer(state, 'u/9.png', 'cat')
  with pytest.raises(errors.ConfigError, match="unknown class 'cow'"):
    labelers.set_answer(state, 'u/0.png', 'cow')
  with pytest.raises(errors.ConfigError, match='No item is labeled'):
    labelers.submit(state)
  state = labelers.set_answer(state, 'u/0.png', 'cat')
  with pytest.raises(errors.ConfigError, match='4 of 5 items are not labeled'):
    labelers.submit(state, allow_partial=False)
  with pytest.raises(errors.ConfigError, match='repeats'):
    labelers.start(BATCH + BATCH[:1], CLASSES)


def test_prefill_starts_at_the_predictions():
  state = labelers.start(BATCH, CLASSES, prefill=True)
  assert labelers.answered(state) == [(item.id, CLASSES.index(item.prediction))
                                      for item in BATCH]


def test_notebook_labeler_without_widgets_calls_on_submit():
  told = []
  labeler = labelers.NotebookLabeler(
      BATCH, CLASSES, lambda ids, labels: told.append((ids, labels)) or 'ok')
  labeler.set('u/2.png', 'cat')
  labeler.set('u/0.png', 'bird')
  assert labeler.remaining() == ('u/1.png', 'u/3.png', 'u/4.png')
  assert labeler.submit() == [('u/0.png', 2), ('u/2.png', 0)]
  assert told == [(['u/0.png', 'u/2.png'], [2, 0])] and labeler.result == 'ok'


def test_notebook_labeler_stays_open_when_on_submit_fails():
  calls = []

  def tell(ids, labels):
    calls.append(ids)
    if len(calls) == 1:
      raise errors.ConfigError('u/0.png was already told')
  labeler = labelers.NotebookLabeler(BATCH, CLASSES, tell)
  labeler.set('u/0.png', 'cat')
  with pytest.raises(errors.ConfigError, match='already told'):
    labeler.submit()
  assert not labeler.state.submitted
  labeler.clear('u/0.png')
  labeler.set('u/1.png', 'cat')
  labeler.submit()
  assert calls == [['u/0.png'], ['u/1.png']] and labeler.state.submitted


def test_missing_ipywidgets_says_how_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, 'ipywidgets', None)
  labeler = labelers.NotebookLabeler(BATCH, CLASSES, lambda ids, labels: None)
  with pytest.raises(ImportError, match='pip install ipywidgets'):
    labeler.widget()


# The widget view, where ipywidgets is installed.


def test_view_builds_and_follows_the_state(tmp_path):
  widgets = pytest.importorskip('ipywidgets')
  PIL = pytest.importorskip('PIL.Image')
  told = []
  path = tmp_path / 'x.png'
  path.write_bytes(b'\x89PNG\r\n\x1a\n not really')
  items = BATCH[:3] + [annotate.BatchItem('x.png', str(path), 0.2, 'cat')]
  images = [np.random.default_rng(0).random((8, 8)), None,
            np.ones((4, 4, 3))]
  labeler = labelers.NotebookLabeler(
      items, CLASSES, lambda ids, labels: told.append((ids, labels)),
      images=images, allow_partial=False, columns=2)
  box = labeler.widget()
  assert labeler.widget() is box
  grid, bottom = box.children
  assert isinstance(grid, widgets.GridBox) and len(grid.children) == 4
  first_image = grid.children[0].children[0]
  drawn = PIL.open(io.BytesIO(bytes(first_image.value)))
  assert drawn.format == 'PNG' and drawn.size == (96, 96)  # 8×8, scaled up
  assert isinstance(grid.children[1].children[0], widgets.HTML)  # no image
  assert bytes(grid.children[3].children[0].value) == path.read_bytes()
  menus = [cell.children[2] for cell in grid.children]
  button, status = bottom.children
  menus[0].value = 1                 # the person picks 'dog' for u/0.png
  labeler.set('u/1.png', 'bird')     # and the state shows in the view
  assert labeler.answers() == [('u/0.png', 1), ('u/1.png', 2)]
  assert menus[1].value == 2 and '2 of 4 labeled' in status.value
  button.click()                     # two items left: refused
  assert not told and 'Not submitted' in status.value
  menus[2].value, menus[3].value = 0, 2
  menus[0].value = None              # cleared again
  menus[0].value = 0
  button.click()
  assert told == [(['u/0.png', 'u/1.png', 'u/2.png', 'x.png'], [0, 2, 0, 2])]
  assert button.disabled and all(menu.disabled for menu in menus)
  assert 'Submitted 4 of 4' in status.value
  bundle = labeler._repr_mimebundle_()  # what a notebook displays
  assert bundle['application/vnd.jupyter.widget-view+json']['model_id'] == (
      box.model_id)
