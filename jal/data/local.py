"""Pools from a user's own files: image folders, manifests and feature arrays.

Each source returns a `LocalPool`: the items' arrays, a stable external id per
item (the path relative to the folder, or the manifest's id), labels where
they are known (-1 where not) and the class names. `to_dataset` turns a pool,
and optionally a held-out labeled pool, into the `Dataset` the loop runs on.

Image sources read every file with Pillow before returning and report every
unreadable, empty or wrongly sized image at once, by path, in one
`CorruptDatasetError` (its `problems` attribute holds `(where, what)` pairs),
so no model work starts on a half-readable folder.
"""

import csv
import json
import os
from typing import Any, NamedTuple, Sequence

import numpy as np
from PIL import Image
from PIL import ImageOps
from PIL import UnidentifiedImageError

from jal import errors
from jal.data import dataset
from jal.data import preprocess

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.gif')
UNKNOWN = -1
# Error messages list at most this many problems, then say how many more.
MAX_LISTED = 20

_LAYOUT = ('expected root/<class name>/**/*.png (or .jpg, .jpeg, .bmp, .gif) '
           'for labeled images and root/<unlabeled_dir>/**/*.png for the '
           'unlabeled pool')
_GRAY_MODES = ('1', 'L', 'LA', 'La', 'I', 'I;16', 'I;16L', 'I;16B', 'I;16N')
_SIXTEEN_BIT_MODES = ('I', 'I;16', 'I;16L', 'I;16B', 'I;16N')
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)


class LocalPool(NamedTuple):
  """Items from a user's files, ordered by id.

  Attributes:
    images: [N, H, W, C] float32 in [0, 1], or [N, D] float32 features.
    ids: N unique stable external ids (relative path, or manifest id).
    labels: [N] int32 in [0, C), -1 where unknown.
    class_names: C names; label c means class_names[c].
    paths: N absolute image file paths (for exports); None for features.
  """
  images: np.ndarray
  ids: tuple[str, ...]
  labels: np.ndarray
  class_names: tuple[str, ...]
  paths: tuple[str, ...] | None


class _Item(NamedTuple):
  """One image to read: its id, file, label and where to point in errors."""
  id: str
  path: str
  label: int
  where: str


def image_folder(root: str | os.PathLike, *,
                 image_size: int | tuple[int, int] | None = None,
                 channels: int | None = None,
                 unlabeled_dir: str | None = 'unlabeled',
                 class_names: Sequence[str] | None = None) -> LocalPool:
  """Reads a folder of images laid out by class.

  `root/<class>/**/*.png` (also .jpg, .jpeg, .bmp, .gif, any letter case) are
  labeled images of class `<class>`; `root/<unlabeled_dir>/**/*` are unlabeled
  pool images (label -1). Files with other suffixes and names starting with
  '.' (e.g. `.ipynb_checkpoints`) are ignored. An item's id is its path
  relative to `root` with '/' separators, e.g. `"cat/0001.png"`; items are
  ordered by id.

  Images are turned upright by their EXIF orientation, converted to grayscale
  ('L', ITU-R 601-2 luma) or RGB (an alpha channel is dropped), resized
  bilinearly if `image_size` is given, and scaled to [0, 1] (16-bit grayscale
  by 1/65535, everything else by 1/255).

  Args:
    root: the folder.
    image_size: `(H, W)` (or one int for square) to resize every image to;
      None requires every image to have the first image's size.
    channels: 1 (grayscale) or 3 (RGB); None is 1 if every image is
      grayscale, else 3.
    unlabeled_dir: name of the subfolder of unlabeled images; None if there
      is none (every subfolder is then a class).
    class_names: the classes, in label order; None is the sorted subfolder
      names other than `unlabeled_dir`. With names given, a subfolder not
      among them is an error, and a name without a subfolder is a class with
      no labeled images yet.

  Returns:
    A `LocalPool` with images [N, H, W, channels] float32 and absolute paths.

  Raises:
    DatasetNotFoundError: `root` is missing or holds no images.
    ConfigError: an argument is out of range, or a subfolder is not a class.
    CorruptDatasetError: some images cannot be used (all listed at once).
  """
  root = os.path.abspath(os.fspath(root))
  size = _check_image_size(image_size)
  _check_channels(channels)
  if unlabeled_dir is not None and (
      not isinstance(unlabeled_dir, str) or not unlabeled_dir or
      '/' in unlabeled_dir or os.sep in unlabeled_dir):
    raise errors.ConfigError(
        f'unlabeled_dir={unlabeled_dir!r}; use the name of a subfolder of '
        'root, or None if there is no unlabeled folder.')
  if not os.path.isdir(root):
    raise errors.DatasetNotFoundError(
        f'Image folder {root} does not exist or is not a folder; {_LAYOUT}.')
  entries = sorted(e for e in os.listdir(root) if not e.startswith('.'))
  folders = [e for e in entries if os.path.isdir(os.path.join(root, e))]
  files = {folder: _image_files(root, folder) for folder in folders}
  problems = [(e, 'image outside any class or unlabeled folder; move it into '
                  'root/<class>/ or root/<unlabeled_dir>/')
              for e in entries
              if e not in files and e.lower().endswith(IMAGE_SUFFIXES)]
  if not problems and not any(files.values()):
    raise errors.DatasetNotFoundError(
        f'Image folder {root} holds no images; {_LAYOUT} '
        f'(unlabeled_dir={unlabeled_dir!r}).')
  class_folders = [f for f in folders if f != unlabeled_dir]
  names = _folder_class_names(root, class_folders, unlabeled_dir, class_names)
  items = []
  for folder, relatives in files.items():
    label = UNKNOWN if folder == unlabeled_dir else names.index(folder)
    items += [_Item(relative, os.path.join(root, *relative.split('/')), label,
                    relative) for relative in relatives]
  items.sort(key=lambda item: item.id)
  images, image_problems = _read_images(items, size, channels)
  problems += image_problems
  if problems:
    _raise_problems(f'image folder {root} ({len(items)} images)', problems)
  return LocalPool(images, tuple(i.id for i in items),
                   np.array([i.label for i in items], np.int32), names,
                   tuple(i.path for i in items))


def manifest(path: str | os.PathLike, *, root: str | os.PathLike | None = None,
             image_size: int | tuple[int, int] | None = None,
             channels: int | None = None,
             class_names: Sequence[str] | None = None) -> LocalPool:
  """Reads the images a CSV or JSONL manifest lists.

  A `.csv` manifest has a header row with a `path` column and optional `id`
  and `label` columns (others are ignored); a `.jsonl` manifest has one JSON
  object per line with those keys (blank lines are skipped). Relative paths
  are resolved against `root`. An item's id is its `id`, else its path as
  written. A label is a class name (a number is the name it spells, so `3`
  and `"3"` are one class); an empty or null label, or none, is unknown (-1).
  Items are ordered by id. Images are read as in `image_folder`.

  Args:
    path: the manifest file, `.csv` or `.jsonl`.
    root: folder relative paths start from; None is the manifest's folder.
    image_size: `(H, W)` (or one int) to resize to; None requires one size.
    channels: 1, 3, or None to infer (see `image_folder`).
    class_names: the classes in label order; None is the distinct label
      names, sorted (by value if they are all integers, else as strings).

  Returns:
    A `LocalPool` with images [N, H, W, channels] float32 and absolute paths.

  Raises:
    DatasetNotFoundError: the manifest does not exist.
    ConfigError: bad arguments, an unsupported suffix, or no class names.
    CorruptDatasetError: malformed rows, duplicate ids, missing files,
      unknown class names or unusable images, all listed by line at once.
  """
  path = os.path.abspath(os.fspath(path))
  size = _check_image_size(image_size)
  _check_channels(channels)
  root = os.path.dirname(path) if root is None else os.path.abspath(
      os.fspath(root))
  rows, problems = _manifest_rows(path)
  names_given = [(line, row['label']) for line, row in rows]
  names, label_of, label_problems = _resolve_labels(names_given, class_names)
  problems += label_problems
  items, first_line = [], {}
  for line, row in rows:
    where = f'line {line}'
    item_id = row['id'] if row['id'] else row['path']
    if item_id in first_line:
      problems.append((where, f'duplicate id {item_id!r} (first on line '
                              f'{first_line[item_id]})'))
      continue
    first_line[item_id] = line
    file = os.path.join(root, row['path'])
    if not os.path.isfile(file):
      problems.append((where, f'no file {file}'))
      continue
    if line in label_of:
      items.append(_Item(item_id, os.path.abspath(file), label_of[line],
                         f'{where} ({row["path"]})'))
  if not rows and not problems:
    raise errors.CorruptDatasetError(
        f'Manifest {path} lists no images; add rows with a `path` (and '
        'optional `id`, `label`).')
  items.sort(key=lambda item: item.id)
  images, image_problems = _read_images(items, size, channels)
  problems += image_problems
  if problems:
    problems.sort(key=lambda problem: int(problem[0].split()[1]))
    _raise_problems(f'manifest {path} ({len(rows)} rows)', problems)
  return LocalPool(images, tuple(i.id for i in items),
                   np.array([i.label for i in items], np.int32), names,
                   tuple(i.path for i in items))


def features(path: str | os.PathLike, *,
             ids: Sequence[str] | str | os.PathLike | None = None,
             labels: Sequence[Any] | np.ndarray | None = None,
             class_names: Sequence[str] | None = None) -> LocalPool:
  """Reads a pool of feature vectors from a `.npy` file.

  Unlike the image sources, items keep the file's row order (already stable),
  so row i of the file is item i whatever its id.

  Args:
    path: a `.npy` file holding a [N, D] numeric array.
    ids: N unique ids, as a sequence of strings or the path of a text file
      with one id per line; None is `'0'`, …, `'N-1'`.
    labels: N labels, all class indices (-1 or None for unknown) or all class
      names (None or '' for unknown); None leaves every label unknown.
    class_names: the classes in label order; None is `'0'`, …, `'max'` for
      index labels, or the sorted distinct names for name labels.

  Returns:
    A `LocalPool` with images [N, D] float32 and paths None.

  Raises:
    DatasetNotFoundError: a file does not exist.
    ConfigError: ids or labels do not fit the array, or there are no class
      names.
    CorruptDatasetError: the file is not a finite [N, D] numeric array.
  """
  path = os.path.abspath(os.fspath(path))
  if not os.path.isfile(path):
    raise errors.DatasetNotFoundError(f'Features file {path} does not exist.')
  try:
    array = np.load(path, mmap_mode='r', allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    raise errors.CorruptDatasetError(
        f'Features file {path} is not a readable .npy array ({e}); save it '
        'with numpy.save.') from e
  if (not isinstance(array, np.ndarray) or array.ndim != 2 or
      0 in array.shape or not (np.issubdtype(array.dtype, np.number) or
                               array.dtype == bool)):
    raise errors.CorruptDatasetError(
        f'Features file {path} holds {getattr(array, "dtype", "?")} of shape '
        f'{getattr(array, "shape", "?")}; expected a non-empty numeric '
        '[N, D] array.')
  values = np.asarray(array, np.float32)
  bad_rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
  if bad_rows.size:
    raise errors.CorruptDatasetError(
        f'Features file {path}: rows {bad_rows[:MAX_LISTED].tolist()}'
        f'{" ..." if bad_rows.size > MAX_LISTED else ""} ({bad_rows.size} in '
        'all) hold NaN or infinite values; clean or impute them.')
  count = values.shape[0]
  item_ids = _feature_ids(ids, count)
  names, label_array = _feature_labels(labels, class_names, count)
  return LocalPool(values, item_ids, label_array, names, None)


def to_dataset(pool: LocalPool, test: LocalPool | None = None,
               name: str = 'local') -> dataset.Dataset:
  """Turns a pool (and a held-out labeled pool) into a `Dataset`.

  Both are standardized per channel (per feature for [N, D]) with the pool's
  mean and std (`preprocess.standardize`). The pool keeps its labels, -1
  where unknown, for an oracle to answer.

  Args:
    pool: the pool to label.
    test: held-out items, all labeled, with the pool's class names and item
      shape; used to measure accuracy. None gives an empty test split
      ([0, ...]): an ask/tell session can run without one, but
      `jal.loop.run` measures test accuracy each round and refuses it.
    name: the dataset's name in records and reports.

  Returns:
    A `Dataset` with num_classes = len(pool.class_names).

  Raises:
    ConfigError: fewer than 2 classes, or `test` does not match the pool, has
      unlabeled items or shares files with it.
  """
  for role, value in (('pool', pool), ('test', test)):
    if not isinstance(value, LocalPool) and not (role == 'test' and
                                                 value is None):
      raise errors.ConfigError(
          f'to_dataset: {role} is a {type(value).__name__}; pass a LocalPool '
          'from jal.data.image_folder, manifest or features.')
  if len(pool.class_names) < 2:
    raise errors.ConfigError(
        f'The pool has {len(pool.class_names)} class names '
        f'{list(pool.class_names)}; a classifier needs at least 2. Pass '
        'class_names to the source.')
  if test is None:
    test_images = pool.images[:0]
    test_labels = np.zeros([0], np.int32)
  else:
    _check_test(pool, test)
    test_images, test_labels = test.images, np.asarray(test.labels, np.int32)
  pool_images, test_images = preprocess.standardize(
      np.asarray(pool.images, np.float32), np.asarray(test_images, np.float32))
  return dataset.Dataset(pool_images, np.asarray(pool.labels, np.int32),
                         test_images, test_labels, len(pool.class_names), name)


def _check_test(pool: LocalPool, test: LocalPool) -> None:
  """Raises `ConfigError` unless `test` can measure the pool's classifier."""
  if tuple(test.class_names) != tuple(pool.class_names):
    raise errors.ConfigError(
        f'The test set has classes {list(test.class_names)} but the pool has '
        f'{list(pool.class_names)}; pass class_names={list(pool.class_names)}'
        ' when loading the test set.')
  if test.images.shape[1:] != pool.images.shape[1:]:
    raise errors.ConfigError(
        f'Test items have shape {test.images.shape[1:]} but pool items have '
        f'{pool.images.shape[1:]}; load both with the same image_size and '
        'channels.')
  if test.labels.shape[0] == 0:
    raise errors.ConfigError('The test set is empty; give it labeled items.')
  unknown = np.flatnonzero(np.asarray(test.labels) < 0)
  if unknown.size:
    listed = [test.ids[i] for i in unknown[:5]]
    raise errors.ConfigError(
        f'{unknown.size} test items have no label (e.g. {listed}); a test set '
        'measures accuracy, so every item needs one. Remove them or label '
        'them.')
  if pool.paths and test.paths:
    shared = sorted(set(pool.paths) & set(test.paths))
    if shared:
      raise errors.ConfigError(
          f'{len(shared)} files are in both the pool and the test set (e.g. '
          f'{shared[:3]}); a held-out set must not overlap the pool.')


def _check_image_size(image_size) -> tuple[int, int] | None:
  """`image_size` as `(H, W)`, or None; `ConfigError` if malformed."""
  if image_size is None:
    return None
  size = (image_size, image_size) if _is_int(image_size) else image_size
  if (not isinstance(size, (tuple, list)) or len(size) != 2 or
      not all(_is_int(s) and s >= 1 for s in size)):
    raise errors.ConfigError(
        f'image_size={image_size!r}; use (height, width) in pixels, one int '
        'for square images, or None to keep the images\' own size.')
  return int(size[0]), int(size[1])


def _check_channels(channels) -> None:
  if channels is not None and (not _is_int(channels) or channels not in (1, 3)):
    raise errors.ConfigError(
        f'channels={channels!r}; use 1 (grayscale), 3 (RGB) or None to infer '
        'it from the images.')


def _folder_class_names(root: str, class_folders: list[str],
                        unlabeled_dir: str | None,
                        class_names: Sequence[str] | None) -> tuple[str, ...]:
  """The class names of an image folder; `ConfigError` if they clash."""
  if class_names is None:
    if not class_folders:
      raise errors.ConfigError(
          f'Image folder {root} has no class folders, so jal cannot name the '
          f'classes; pass class_names=[...], or {_LAYOUT}.')
    return tuple(class_folders)
  names = _check_class_names(class_names)
  if unlabeled_dir is not None and unlabeled_dir in names:
    raise errors.ConfigError(
        f'class_names include {unlabeled_dir!r}, the unlabeled folder; rename '
        'the class or pass another unlabeled_dir.')
  strays = [f for f in class_folders if f not in names]
  if strays:
    raise errors.ConfigError(
        f'Image folder {root} has folders {strays} that are not among '
        f'class_names {list(names)}; add them to class_names, or move or '
        'rename them.')
  return names


def _check_class_names(class_names) -> tuple[str, ...]:
  names = (None if isinstance(class_names, (str, bytes)) or
           not hasattr(class_names, '__iter__') else tuple(class_names))
  if (not names or not all(isinstance(n, str) and n for n in names) or
      len(set(names)) != len(names)):
    raise errors.ConfigError(
        f'class_names={class_names!r}; use a list of distinct non-empty '
        'strings, one per class in label order.')
  return tuple(str(n) for n in names)


def _image_files(root: str, folder: str) -> list[str]:
  """Ids ('/'-separated relative paths) of the images under `root/folder`."""
  found = []
  for directory, subdirs, files in os.walk(os.path.join(root, folder)):
    subdirs[:] = sorted(d for d in subdirs if not d.startswith('.'))
    relative = os.path.relpath(directory, root).replace(os.sep, '/')
    found += [f'{relative}/{f}' for f in files
              if not f.startswith('.') and f.lower().endswith(IMAGE_SUFFIXES)]
  return found


def _read_images(items: list[_Item], size: tuple[int, int] | None,
                 channels: int | None) -> tuple[np.ndarray, list]:
  """Reads every item's image into one array, collecting what goes wrong.

  A first pass reads only headers (size, mode) to settle the output shape; a
  second decodes each image into its row.

  Returns:
    `(images, problems)`: images [N, H, W, C] float32 in [0, 1] (rows of
    failed items left zero), problems a list of `(where, what)` pairs.
  """
  problems, headers = {}, []
  for row, item in enumerate(items):
    try:
      headers.append(_read_header(item.path))
    except Exception as e:  # pylint: disable=broad-except
      headers.append(None)
      problems[row] = _describe_failure(item.path, e)
  readable = [(item, h) for item, h in zip(items, headers) if h is not None]
  if channels is None:
    channels = 1 if all(gray for _, (_, gray) in readable) else 3
  if size is None and readable:
    first, (size, _) = readable[0]
    for row, header in enumerate(headers):
      if header is not None and header[0] != size:
        problems[row] = (
            f'{_hw(header[0])} pixels but the first image, {first.where}, is '
            f'{_hw(size)}; pass image_size=(H, W) to resize every image')
  size = size or (1, 1)
  images = np.zeros((len(items), *size, channels), np.float32)
  for row, item in enumerate(items):
    if row in problems:
      continue
    try:
      images[row] = _decode(item.path, size, channels)
    except Exception as e:  # pylint: disable=broad-except
      problems[row] = _describe_failure(item.path, e)
  listed = [(items[row].where, problems[row]) for row in sorted(problems)]
  return images, listed


def _read_header(path: str) -> tuple[tuple[int, int], bool]:
  """`((H, W), is_grayscale)` of the upright image, from its header."""
  with Image.open(path) as image:
    width, height = image.size
    if image.getexif().get(_EXIF_ORIENTATION, 1) in _TRANSPOSED_ORIENTATIONS:
      width, height = height, width
    return (height, width), _is_gray(image)


def _is_gray(image: Image.Image) -> bool:
  """Whether an image has one channel, or only grey palette colours."""
  if image.mode in ('P', 'PA'):
    palette = np.asarray(image.getpalette('RGB') or [], np.int64)
    return bool(np.all(palette[0::3] == palette[1::3]) and
                np.all(palette[1::3] == palette[2::3]))
  return image.mode in _GRAY_MODES


def _decode(path: str, size: tuple[int, int], channels: int) -> np.ndarray:
  """The image at `path` as [H, W, channels] float32 in [0, 1]."""
  with Image.open(path) as image:
    image.load()
    image = ImageOps.exif_transpose(image)
    if image.mode in _SIXTEEN_BIT_MODES:
      image, scale = image.convert('F'), np.float32(65535)
    else:
      image, scale = image.convert('L' if channels == 1 else 'RGB'), None
    if (image.height, image.width) != size:
      image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    if scale is None:
      pixels = np.asarray(image, np.uint8).astype(np.float32) / np.float32(255)
    else:
      pixels = np.clip(np.asarray(image, np.float32) / scale, 0, 1)
  pixels = pixels.reshape(size[0], size[1], -1)
  if pixels.shape[-1] != channels:
    pixels = np.repeat(pixels, channels, axis=-1)
  return pixels


def _describe_failure(path: str, error: Exception) -> str:
  """What went wrong reading the image at `path`, in a few words."""
  if os.path.isfile(path) and os.path.getsize(path) == 0:
    return 'empty file (0 bytes)'
  if isinstance(error, UnidentifiedImageError):
    return 'not an image Pillow can read (unknown format or damaged header)'
  return f'cannot be decoded ({type(error).__name__}: {error})'


def _hw(size: tuple[int, int]) -> str:
  return f'{size[0]}x{size[1]} (HxW)'


def _manifest_rows(path: str) -> tuple[list[tuple[int, dict]], list]:
  """`(line, {'path', 'id', 'label'})` per manifest row, and problems."""
  suffix = os.path.splitext(path)[1].lower()
  if suffix not in ('.csv', '.jsonl'):
    raise errors.ConfigError(
        f'Manifest {path} has suffix {suffix!r}; use .csv (header with path, '
        'id, label columns) or .jsonl (one object per line with those keys).')
  if not os.path.isfile(path):
    raise errors.DatasetNotFoundError(f'Manifest {path} does not exist.')
  rows, problems = [], []
  with open(path, newline='', encoding='utf-8-sig') as f:
    if suffix == '.csv':
      reader = csv.DictReader(f)
      if not reader.fieldnames or 'path' not in reader.fieldnames:
        raise errors.CorruptDatasetError(
            f'Manifest {path}: the header {reader.fieldnames} has no `path` '
            'column; the first row must name the columns, e.g. '
            'path,id,label.')
      for record in reader:
        rows.append((reader.line_num, record))
    else:
      for line, text in enumerate(f, start=1):
        if not text.strip():
          continue
        try:
          record = json.loads(text)
        except json.JSONDecodeError as e:
          problems.append((f'line {line}', f'not valid JSON ({e})'))
          continue
        rows.append((line, record))
  kept = []
  for line, record in rows:
    row, problem = _manifest_row(record)
    if problem:
      problems.append((f'line {line}', problem))
    else:
      kept.append((line, row))
  return kept, problems


def _manifest_row(record) -> tuple[dict | None, str | None]:
  """A manifest record as `{'path', 'id', 'label'}`, or what is wrong."""
  if not isinstance(record, dict):
    return None, 'not an object with a "path" key'
  path = record.get('path')
  if not isinstance(path, str) or not path.strip():
    return None, 'no path'
  item_id = record.get('id')
  if item_id is not None and not isinstance(item_id, (str, int)):
    return None, f'id {item_id!r} is not a string'
  label = record.get('label')
  if isinstance(label, bool) or not isinstance(label, (str, int, type(None))):
    return None, f'label {label!r} is not a class name'
  label = None if label is None else str(label).strip()
  item_id = None if item_id is None else str(item_id).strip()
  return {'path': path.strip(), 'id': item_id or None,
          'label': label or None}, None


def _resolve_labels(
    named: list[tuple[Any, str | None]], class_names: Sequence[str] | None
) -> tuple[tuple[str, ...], dict, list]:
  """Maps label names to indices.

  Args:
    named: `(key, name or None)` pairs; key is a line number or row index.
    class_names: the given names, or None to take the sorted distinct names.

  Returns:
    `(names, {key: label index or -1}, problems)`; keys whose name is not a
    class are left out and reported.
  """
  if class_names is None:
    distinct = {name for _, name in named if name is not None}
    if not distinct:
      raise errors.ConfigError(
          'No item has a label, so jal cannot name the classes; pass '
          'class_names=[...].')
    names = tuple(_sorted_names(distinct))
  else:
    names = _check_class_names(class_names)
  index = {name: i for i, name in enumerate(names)}
  labels, problems = {}, []
  for key, name in named:
    if name is None:
      labels[key] = UNKNOWN
    elif name in index:
      labels[key] = index[name]
    else:
      where = f'line {key}' if isinstance(key, int) else str(key)
      problems.append((where, f'label {name!r} is not one of the classes '
                              f'{list(names)}'))
  return names, labels, problems


def _sorted_names(names) -> list[str]:
  """Sorted by integer value if every name spells an integer, else as text."""
  if all(n.lstrip('-').isdigit() for n in names):
    return sorted(names, key=lambda n: (int(n), n))
  return sorted(names)


def _feature_ids(ids, count: int) -> tuple[str, ...]:
  """The ids of a features pool; `ConfigError` unless N unique strings."""
  if ids is None:
    return tuple(str(i) for i in range(count))
  source = 'ids'
  if isinstance(ids, (str, os.PathLike)):
    source = os.path.abspath(os.fspath(ids))
    if not os.path.isfile(source):
      raise errors.DatasetNotFoundError(f'Ids file {source} does not exist.')
    with open(source, encoding='utf-8-sig') as f:
      ids = f.read().splitlines()
    if ids and not ids[-1]:
      ids = ids[:-1]
  ids = tuple(ids)
  if len(ids) != count:
    raise errors.ConfigError(
        f'{source} has {len(ids)} ids for {count} feature rows; give one id '
        'per row.')
  bad = [i for i, x in enumerate(ids) if not isinstance(x, str) or not x]
  if bad:
    raise errors.ConfigError(
        f'{source}: entries {bad[:MAX_LISTED]} (0-based) are not non-empty '
        'strings; give one id per row.')
  seen, duplicates = {}, []
  for i, x in enumerate(ids):
    if x in seen:
      duplicates.append(f'{x!r} (entries {seen[x]} and {i})')
    seen.setdefault(x, i)
  if duplicates:
    raise errors.ConfigError(
        f'{source}: duplicate ids {duplicates[:MAX_LISTED]}; ids must be '
        'unique.')
  return ids


def _feature_labels(labels, class_names, count: int
                    ) -> tuple[tuple[str, ...], np.ndarray]:
  """`(class_names, [N] int32 labels)` of a features pool."""
  if labels is None:
    if class_names is None:
      raise errors.ConfigError(
          'Features without labels need class_names=[...] to name the '
          'classes.')
    return _check_class_names(class_names), np.full(count, UNKNOWN, np.int32)
  values = list(np.asarray(labels, object).reshape(-1)) if isinstance(
      labels, np.ndarray) else list(labels)
  if len(values) != count:
    raise errors.ConfigError(
        f'labels has {len(values)} entries for {count} feature rows; give one '
        'label per row (-1 or None if unknown).')
  is_index = [v is None or _is_int(v) for v in values]
  if all(is_index):
    indices = np.array([UNKNOWN if v is None else int(v) for v in values],
                       np.int32)
    if class_names is None:
      top = int(indices.max(initial=UNKNOWN))
      if top < 0:
        raise errors.ConfigError(
            'Every label is unknown, so jal cannot name the classes; pass '
            'class_names=[...].')
      names = tuple(str(c) for c in range(top + 1))
    else:
      names = _check_class_names(class_names)
    bad = np.flatnonzero((indices < UNKNOWN) | (indices >= len(names)))
    if bad.size:
      raise errors.ConfigError(
          f'labels at rows {bad[:MAX_LISTED].tolist()} are outside '
          f'[-1, {len(names)}); use class indices, or -1 for unknown.')
    return names, indices
  if not all(v is None or isinstance(v, str) for v in values):
    raise errors.ConfigError(
        'labels must be all class indices (ints; -1 or None if unknown) or '
        'all class names (strings; None or "" if unknown), not a mix or '
        'floats.')
  named = [(f'row {i}', v.strip() or None if v is not None else None)
           for i, v in enumerate(values)]
  names, label_of, problems = _resolve_labels(named, class_names)
  if problems:
    _raise_problems('labels', problems, error=errors.ConfigError)
  return names, np.array([label_of[key] for key, _ in named], np.int32)


def _raise_problems(what: str, problems: list[tuple[str, str]],
                    error=errors.CorruptDatasetError) -> None:
  """Raises `error` listing up to `MAX_LISTED` `(where, what)` problems."""
  listed = [f'  {where}: {problem}' for where, problem in problems[:MAX_LISTED]]
  if len(problems) > MAX_LISTED:
    listed.append(f'  ... and {len(problems) - MAX_LISTED} more')
  exception = error(
      f'{len(problems)} problem{"s" if len(problems) != 1 else ""} in {what}; '
      'fix or remove these items and load again:\n' + '\n'.join(listed))
  exception.problems = tuple(problems)
  raise exception


def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
