"""Labeling a batch by hand: in a terminal, or in a notebook.

Both take a batch of `annotate.BatchItem`s (what `ask` returns) and give back
`(id, class index)` answers for the items the person labeled, ready for a
session's `tell`.

- `terminal` walks the batch once: it shows each item (id, path, the model's
  guess and score, and small grayscale images as ASCII art) and reads one
  answer per item from `ask` (default `input`).
- `NotebookLabeler` shows the batch as a grid of images with a class menu per
  image and a Submit button that calls `on_submit(ids, labels)`. What it knows
  (`LabelingState` and the pure functions over it) is kept apart from its
  ipywidgets view, so the logic is tested without widgets; ipywidgets (and
  Pillow, to draw arrays) are only imported when the view is built
  (`pip install ipywidgets`, or jal's `notebook` extra).

Answers name a class by name or index, as in `annotate.class_index`.
"""

import html
import io
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from jal import annotate
from jal import errors

_RAMP = ' .:-=+*#%@'
SKIP = ('s', 'skip')
QUIT = ('q', 'quit')


def _image_of(images, index: int, item_id: str):
  """The image given for an item: `images` is aligned with the batch, or
  maps ids to images; None when there is none."""
  if images is None:
    return None
  if isinstance(images, Mapping):
    return images.get(item_id)
  return images[index] if index < len(images) else None


def _grayscale(image) -> np.ndarray | None:
  """[H, W] float array of a grayscale image ([H, W] or [H, W, 1]), or None."""
  image = np.asarray(image, np.float32)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  return image if image.ndim == 2 and image.size else None


def ascii_image(image, max_side: int = 32) -> str | None:
  """Draws a grayscale image with characters, dark to light as ' ' to '@'.

  Args:
    image: [H, W] or [H, W, 1] array, any range (scaled to its own min..max).
    max_side: images larger than this are averaged over square blocks first.

  Returns:
    H' lines of 2·W' characters (each pixel twice, for square-ish pixels), or
    None for an image with colour channels.
  """
  gray = _grayscale(image)
  if gray is None:
    return None
  factor = max(1, math.ceil(max(gray.shape) / max_side))
  if factor > 1:
    pad = [(0, -n % factor) for n in gray.shape]
    gray = np.pad(gray, pad, mode='edge')
    h, w = gray.shape[0] // factor, gray.shape[1] // factor
    gray = gray.reshape(h, factor, w, factor).mean(axis=(1, 3))
  low, high = float(gray.min()), float(gray.max())
  level = (gray - low) / (high - low) if high > low else np.zeros_like(gray)
  steps = np.minimum((level * len(_RAMP)).astype(int), len(_RAMP) - 1)
  return '\n'.join(''.join(_RAMP[s] * 2 for s in row) for row in steps)


def parse_answer(
    text: str, class_names: Sequence[str], prediction: str | None = None
) -> tuple[str, int | None] | None:
  """Reads one typed answer.

  Class names come first, so a class called 's' is that class ('skip' still
  skips).

  Returns:
    ('label', class index) for a class name, an index, or an empty answer
    when `prediction` is a class (accepting the model's guess); ('skip', None)
    for 's' or 'skip'; ('quit', None) for 'q' or 'quit'; None otherwise.
  """
  text = text.strip()
  if text in class_names:
    return 'label', list(class_names).index(text)
  if not text:
    if prediction in class_names:
      return 'label', list(class_names).index(prediction)
    return None
  if text.lower() in SKIP:
    return 'skip', None
  if text.lower() in QUIT:
    return 'quit', None
  index = annotate.class_index(text, class_names)
  return None if index is None else ('label', index)


def terminal(items: Sequence[annotate.BatchItem], class_names: Sequence[str],
             *, images=None, ask: Callable[[str], str] = input,
             show: Callable[[str], None] = print) -> list[tuple[str, int]]:
  """Asks a person for the label of each item of a batch, in one pass.

  For each item it shows the id, the path, the model's prediction and score,
  and, for a grayscale image, an ASCII drawing; then asks until the answer is
  a class name or index, Enter (the prediction), 's' (skip the item) or 'q'
  (stop here; end of input does the same). Other answers are asked again.

  Args:
    items: the batch.
    class_names: the C class names.
    images: optional images to draw: a sequence aligned with `items`, or a
      mapping from id to image; each [H, W] or [H, W, 1] (others not drawn).
    ask: reads a reply to a prompt (default `input`).
    show: prints a line (default `print`).

  Returns:
    `(id, class index)` for each answered item, in batch order.
  """
  class_names = tuple(class_names)
  items = [annotate.BatchItem(*item) for item in items]
  by_index = annotate.class_index(0, class_names) is not None
  show(f'{len(items)} items to label. Classes: ' + ', '.join(
      f'{i} {name}' if by_index else name
      for i, name in enumerate(class_names)))
  show('Answer a class name' + (' or index' if by_index else '')
       + "; Enter accepts the model's guess; s skips the item; q stops "
       '(answers so far are kept).')
  answers, skipped = [], 0
  for number, item in enumerate(items, start=1):
    where = f' ({item.path})' if item.path and item.path != item.id else ''
    show(f'\n[{number}/{len(items)}] {item.id}{where}')
    show(f'model: {item.prediction} (score {float(item.score):.4g})')
    image = _image_of(images, number - 1, item.id)
    drawing = None if image is None else ascii_image(image)
    if drawing:
      show(drawing)
    while True:
      try:
        reply = ask(f'label [{item.prediction}]: ')
      except EOFError:
        reply = 'q'
      answer = parse_answer(reply, class_names, item.prediction)
      if answer is not None:
        break
      show('Not an answer: ' + annotate.unknown_class(reply.strip(),
                                                      class_names)
           + '; s skips, q stops.')
    kind, index = answer
    if kind == 'quit':
      break
    if kind == 'skip':
      skipped += 1
    else:
      answers.append((item.id, index))
  left = len(items) - len(answers) - skipped
  show(f'{len(answers)} labeled, {skipped} skipped, {left} not reached.')
  return answers


class LabelingState(NamedTuple):
  """What a person has answered for one batch; never changed in place.

  Attributes:
    items: the batch.
    class_names: the C class names.
    answers: item id → class index, for the answered items.
    submitted: whether the answers were handed on (then they are final).
  """
  items: tuple[annotate.BatchItem, ...]
  class_names: tuple[str, ...]
  answers: Mapping[str, int]
  submitted: bool = False


def start(items: Sequence[annotate.BatchItem], class_names: Sequence[str],
          *, prefill: bool = False) -> LabelingState:
  """A fresh state for a batch; with `prefill`, every item starts at the
  model's prediction (when it is a class), for the person to correct.

  Raises:
    ConfigError: the batch repeats an id.
  """
  items = tuple(annotate.BatchItem(*item) for item in items)
  class_names = tuple(class_names)
  ids = [item.id for item in items]
  if len(set(ids)) != len(ids):
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    raise errors.ConfigError(
        f'The batch repeats the id(s) {", ".join(map(repr, repeated))}. '
        'Label a batch as ask returned it.')
  answers = {}
  if prefill:
    answers = {item.id: class_names.index(item.prediction)
               for item in items if item.prediction in class_names}
  return LabelingState(items, class_names, answers)


def _check_open(state: LabelingState, item_id: str):
  if state.submitted:
    raise errors.ConfigError(
        'These answers were already submitted; start a new labeler for the '
        'next batch.')
  if item_id not in {item.id for item in state.items}:
    raise errors.ConfigError(f'{item_id!r} is not in this batch.')


def set_answer(state: LabelingState, item_id: str, label) -> LabelingState:
  """The state with `item_id` answered as `label` (a class name or index).

  Raises:
    ConfigError: unknown id or class, or the state was submitted.
  """
  _check_open(state, item_id)
  index = annotate.class_index(label, state.class_names)
  if index is None:
    raise errors.ConfigError(
        f'{item_id!r}: {annotate.unknown_class(label, state.class_names)}.')
  return state._replace(answers={**state.answers, item_id: index})


def clear_answer(state: LabelingState, item_id: str) -> LabelingState:
  """The state with `item_id` unanswered again.

  Raises:
    ConfigError: unknown id, or the state was submitted.
  """
  _check_open(state, item_id)
  return state._replace(answers={k: v for k, v in state.answers.items()
                                 if k != item_id})


def remaining(state: LabelingState) -> tuple[str, ...]:
  """The ids not answered yet, in batch order."""
  return tuple(item.id for item in state.items
               if item.id not in state.answers)


def answered(state: LabelingState) -> list[tuple[str, int]]:
  """`(id, class index)` for the answered items, in batch order."""
  return [(item.id, state.answers[item.id]) for item in state.items
          if item.id in state.answers]


def submit(state: LabelingState, *, allow_partial: bool = True
           ) -> tuple[LabelingState, list[tuple[str, int]]]:
  """Closes the state and returns its answers.

  Args:
    state: the answers so far.
    allow_partial: whether items may be left unanswered.

  Returns:
    The submitted state, and `answered(state)`.

  Raises:
    ConfigError: already submitted, nothing answered, or items are left and
      `allow_partial` is False.
  """
  if state.submitted:
    raise errors.ConfigError('These answers were already submitted.')
  left = remaining(state)
  if not state.answers:
    raise errors.ConfigError('No item is labeled yet; pick a class for at '
                             'least one image before submitting.')
  if left and not allow_partial:
    raise errors.ConfigError(
        f'{len(left)} of {len(state.items)} items are not labeled yet '
        f'({", ".join(left[:5])}{", ..." if len(left) > 5 else ""}); label '
        'them before submitting.')
  return state._replace(submitted=True), answered(state)


def _import_widgets():
  try:
    import ipywidgets  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError(
        'The notebook labeler needs ipywidgets: pip install ipywidgets (or '
        "pip install 'jal[notebook]').") from None
  return ipywidgets


def _png(image, size: int) -> bytes | None:
  """PNG bytes of an [H, W], [H, W, 1] or [H, W, 3] image, scaled up (nearest)
  so its longer side is at least `size` pixels; None without Pillow."""
  try:
    from PIL import Image  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  array = np.asarray(image, np.float32)
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  low, high = float(array.min()), float(array.max())
  if 0 <= low and high <= 1:
    scaled = array
  else:
    scaled = (array - low) / (high - low) if high > low else array * 0
  picture = Image.fromarray((scaled * 255).round().astype(np.uint8))
  factor = max(1, math.ceil(size / max(array.shape[:2])))
  if factor > 1:
    picture = picture.resize((picture.width * factor, picture.height * factor),
                             Image.Resampling.NEAREST)
  out = io.BytesIO()
  picture.save(out, format='PNG')
  return out.getvalue()


class NotebookLabeler:
  """Labels a batch in a notebook: a grid of images with a class menu each.

  The labeler holds a `LabelingState`; the view (built by `widget()`, or when
  the labeler is displayed) only calls `set`, `clear` and `submit`, which work
  without widgets too. Submit calls `on_submit(ids, labels)` (e.g. a session's
  `tell`) with the answered items' ids and class indices; if it raises, the
  answers stay open and the error is shown. `result` keeps what `on_submit`
  returned.

  Example:
    labeler = NotebookLabeler(batch, class_names, session.tell)
    labeler  # last expression of a cell: shows the grid
  """

  def __init__(self, items: Sequence[annotate.BatchItem],
               class_names: Sequence[str],
               on_submit: Callable[[list[str], list[int]], object], *,
               images=None, prefill: bool = False,
               allow_partial: bool = True, columns: int = 5,
               thumbnail: int = 96):
    """See the class docstring.

    Args:
      items: the batch.
      class_names: the C class names.
      on_submit: called once with (ids, class indices) of the answers.
      images: optional images to show (a sequence aligned with `items`, or a
        mapping id → image, each [H, W], [H, W, 1] or [H, W, 3]); otherwise
        each item's image file is shown.
      prefill: start every item at the model's prediction.
      allow_partial: whether Submit may leave items unanswered.
      columns: images per row.
      thumbnail: smallest size in pixels images are drawn at.
    """
    self.state = start(items, class_names, prefill=prefill)
    self.on_submit = on_submit
    self.images = images
    self.allow_partial = allow_partial
    self.columns = columns
    self.thumbnail = thumbnail
    self.result = None  # what on_submit returned
    self._view = None

  def set(self, item_id: str, label) -> None:
    """Answers `item_id` with a class name or index."""
    self.state = set_answer(self.state, item_id, label)
    self._refresh()

  def clear(self, item_id: str) -> None:
    """Makes `item_id` unanswered again."""
    self.state = clear_answer(self.state, item_id)
    self._refresh()

  def remaining(self) -> tuple[str, ...]:
    """The ids not answered yet, in batch order."""
    return remaining(self.state)

  def answers(self) -> list[tuple[str, int]]:
    """`(id, class index)` of the answered items, in batch order."""
    return answered(self.state)

  def submit(self) -> list[tuple[str, int]]:
    """Hands the answers to `on_submit`; they are final once it returns.

    Raises:
      ConfigError: as `submit`; whatever `on_submit` raises (the answers then
        stay open, to fix and submit again).
    """
    closed, answers = submit(self.state, allow_partial=self.allow_partial)
    ids = [item_id for item_id, _ in answers]
    labels = [index for _, index in answers]
    self.result = self.on_submit(ids, labels)
    self.state = closed
    self._refresh()
    return answers

  def _status_text(self) -> str:
    total = len(self.state.items)
    done = len(self.state.answers)
    if self.state.submitted:
      return f'Submitted {done} of {total} labels.'
    return f'{done} of {total} labeled.'

  def _image_widget(self, widgets, index: int, item: annotate.BatchItem):
    image = _image_of(self.images, index, item.id)
    if image is not None:
      data = _png(image, self.thumbnail)
      if data is not None:
        return widgets.Image(value=data, format='png',
                             width=f'{self.thumbnail}px')
    if item.path and os.path.isfile(item.path):
      with open(item.path, 'rb') as f:
        data = f.read()
      ext = os.path.splitext(item.path)[1].lstrip('.').lower() or 'png'
      return widgets.Image(value=data, format=ext,
                           width=f'{self.thumbnail}px')
    return widgets.HTML('<i>no image</i>')

  def widget(self):
    """The ipywidgets view (built once).

    Raises:
      ImportError: ipywidgets is not installed (says how to install it).
    """
    if self._view is not None:
      return self._view['box']
    widgets = _import_widgets()
    options = [('—', None)] + [(name, i) for i, name in
                              enumerate(self.state.class_names)]
    menus, cells = {}, []
    for index, item in enumerate(self.state.items):
      menu = widgets.Dropdown(options=options,
                              value=self.state.answers.get(item.id),
                              layout=widgets.Layout(width='auto'))
      menu.observe(self._on_menu(item.id), names='value')
      menus[item.id] = menu
      caption = widgets.HTML(
          f'<small>{html.escape(item.id)}<br>model: '
          f'{html.escape(item.prediction)} '
          f'({float(item.score):.3g})</small>')
      cells.append(widgets.VBox([self._image_widget(widgets, index, item),
                                 caption, menu]))
    grid = widgets.GridBox(cells, layout=widgets.Layout(
        grid_template_columns=f'repeat({self.columns}, auto)'))
    button = widgets.Button(description='Submit', button_style='primary')
    status = widgets.HTML(self._status_text())
    button.on_click(self._on_click)
    box = widgets.VBox([grid, widgets.HBox([button, status])])
    self._view = {'box': box, 'menus': menus, 'button': button,
                  'status': status}
    self._refresh()
    return box

  def _on_menu(self, item_id):
    def changed(change):
      if self.state.submitted:
        return
      if change['new'] is None:
        self.state = clear_answer(self.state, item_id)
      else:
        self.state = set_answer(self.state, item_id, change['new'])
      self._refresh()
    return changed

  def _on_click(self, _):
    try:
      self.submit()
    except Exception as e:  # pylint: disable=broad-except
      self._view['status'].value = (
          f'<b>Not submitted</b>: {html.escape(str(e))}')

  def _refresh(self):
    if self._view is None:
      return
    for item_id, menu in self._view['menus'].items():
      value = self.state.answers.get(item_id)
      if menu.value != value:
        menu.value = value
      menu.disabled = self.state.submitted
    self._view['button'].disabled = self.state.submitted
    self._view['status'].value = self._status_text()

  def _repr_mimebundle_(self, **kwargs):
    return self.widget()._repr_mimebundle_(**kwargs)
