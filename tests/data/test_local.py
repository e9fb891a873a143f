"""Tests of jal.data.local: image folders, manifests and features as pools.

Images are scikit-learn's digits written as 8-bit PNGs (lossless), so what
jal reads back is compared exactly with the source grey levels / 255.
"""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from jal import data
from jal import errors
from jal import loop
from jal.data import local
from tests import synthetic

DIGITS, DIGIT_LABELS = synthetic.digits_uint8()


def digit_index(item_id: str) -> int:
  """The digits index in a `write_digits_image_folder` id."""
  return int(os.path.splitext(item_id.rsplit('/', 1)[1])[0])


def save(path, pixels: np.ndarray) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(pixels).save(path)
  return str(path)


def png_bytes(pixels: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, 'PNG')
  return buffer.getvalue()


# Image folders.


def test_image_folder_reads_digits_exactly(tmp_path):
  written = synthetic.write_digits_image_folder(
      tmp_path, labeled_per_class=2, num_unlabeled=15, seed=3)
  pool = data.image_folder(tmp_path)
  assert pool.ids == tuple(sorted(written))
  assert pool.class_names == tuple(str(c) for c in range(10))
  expected_labels = [-1 if i.startswith('unlabeled/') else written[i]
                     for i in pool.ids]
  np.testing.assert_array_equal(pool.labels, expected_labels)
  assert pool.labels.dtype == np.int32
  assert pool.images.dtype == np.float32 and pool.images.shape == (35, 8, 8, 1)
  indices = [digit_index(i) for i in pool.ids]
  np.testing.assert_array_equal(
      pool.images[..., 0], DIGITS[indices].astype(np.float32) / 255)
  np.testing.assert_array_equal(DIGIT_LABELS[indices][:20], pool.labels[:20])
  assert pool.paths == tuple(str(tmp_path / i) for i in pool.ids)
  # A second load gives the same ids in the same order.
  assert data.image_folder(str(tmp_path)).ids == pool.ids


def test_image_folder_keeps_a_larger_size_and_resizes(tmp_path):
  synthetic.write_digits_image_folder(tmp_path, labeled_per_class=1,
                                      num_unlabeled=0, image_size=16)
  big, _ = synthetic.digits_uint8(16)
  pool = data.image_folder(tmp_path)
  indices = [digit_index(i) for i in pool.ids]
  np.testing.assert_array_equal(pool.images[..., 0],
                                big[indices] / np.float32(255))

  resized = data.image_folder(tmp_path, image_size=(8, 4))
  assert resized.images.shape == (10, 8, 4, 1)
  reference = [np.asarray(Image.fromarray(big[i]).resize(
      (4, 8), Image.Resampling.BILINEAR)) for i in indices]
  np.testing.assert_array_equal(resized.images[..., 0],
                                np.array(reference) / np.float32(255))
  assert data.image_folder(tmp_path, image_size=5).images.shape[1:3] == (5, 5)


def test_resizing_a_constant_image_keeps_its_value(tmp_path):
  save(tmp_path / 'a' / 'x.png', np.full((10, 6), 51, np.uint8))
  save(tmp_path / 'b' / 'y.png', np.full((3, 3), 204, np.uint8))
  pool = data.image_folder(tmp_path, image_size=(4, 7))
  np.testing.assert_array_equal(pool.images[0], np.full((4, 7, 1), 0.2,
                                                        np.float32))
  np.testing.assert_array_equal(pool.images[1], np.full((4, 7, 1), 0.8,
                                                        np.float32))


def test_channels_are_inferred_and_converted(tmp_path):
  gray = np.full((4, 4), 100, np.uint8)
  red = np.zeros((4, 4, 3), np.uint8)
  red[..., 0] = 255
  save(tmp_path / 'g' / 'gray.png', gray)
  save(tmp_path / 'r' / 'red.png', red)
  pool = data.image_folder(tmp_path)  # One RGB image makes all RGB.
  assert pool.images.shape == (2, 4, 4, 3)
  np.testing.assert_array_equal(pool.images[0], np.full((4, 4, 3), 100 / 255,
                                                        np.float32))
  np.testing.assert_array_equal(pool.images[1], red / np.float32(255))

  as_gray = data.image_folder(tmp_path, channels=1)
  assert as_gray.images.shape == (2, 4, 4, 1)
  # Luma of pure red is 0.299 (ITU-R 601-2), to 8 bits.
  np.testing.assert_allclose(as_gray.images[1], 0.299, atol=1 / 255)
  os.remove(tmp_path / 'r' / 'red.png')
  assert data.image_folder(tmp_path).images.shape == (1, 4, 4, 1)
  assert data.image_folder(tmp_path, channels=3).images.shape == (1, 4, 4, 3)


def test_sixteen_bit_and_palette_images(tmp_path):
  deep = np.array([[0, 65535], [32768, 255]], np.uint16)
  save(tmp_path / 'a' / 'deep.png', deep)
  gray_gif = Image.fromarray(np.array([[0, 128], [255, 7]], np.uint8))
  gray_gif.save(tmp_path / 'a' / 'gray.gif')
  with Image.open(tmp_path / 'a' / 'gray.gif') as gif:
    assert gif.mode == 'P'
  pool = data.image_folder(tmp_path)
  assert pool.images.shape == (2, 2, 2, 1)  # A grey palette is grey.
  np.testing.assert_allclose(pool.images[0, ..., 0], deep / 65535, atol=1e-7)
  np.testing.assert_array_equal(
      pool.images[1, ..., 0], np.uint8([[0, 128], [255, 7]]) / np.float32(255))
  assert data.image_folder(tmp_path, channels=3).images.shape == (2, 2, 2, 3)


def test_exif_orientation_turns_images_upright(tmp_path):
  pixels = np.arange(6, dtype=np.uint8).reshape(2, 3) * 40
  exif = Image.Exif()
  exif[0x0112] = 6  # Display rotated 90 degrees clockwise.
  os.makedirs(tmp_path / 'a')
  Image.fromarray(pixels).save(tmp_path / 'a' / 'turned.png', exif=exif)
  save(tmp_path / 'a' / 'plain.png', np.zeros((3, 2), np.uint8))
  pool = data.image_folder(tmp_path)  # Both are 3x2 once upright.
  np.testing.assert_array_equal(pool.images[1, ..., 0],
                                np.rot90(pixels, k=-1) / np.float32(255))


def test_folder_layout_details(tmp_path):
  pixels = np.zeros((2, 2), np.uint8)
  save(tmp_path / 'cat' / 'deep' / 'er' / 'a.PNG', pixels)
  save(tmp_path / 'cat' / '.hidden' / 'b.png', pixels)
  save(tmp_path / 'cat' / '.c.png', pixels)
  save(tmp_path / 'dog' / 'd.jpg', pixels)
  save(tmp_path / 'pool' / 'e.bmp', pixels)
  (tmp_path / 'dog' / 'notes.txt').write_text('not an image')
  (tmp_path / '.ipynb_checkpoints').mkdir()
  pool = data.image_folder(tmp_path, unlabeled_dir='pool')
  assert pool.ids == ('cat/deep/er/a.PNG', 'dog/d.jpg', 'pool/e.bmp')
  assert pool.class_names == ('cat', 'dog')
  np.testing.assert_array_equal(pool.labels, [0, 1, -1])

  named = data.image_folder(tmp_path, unlabeled_dir='pool',
                            class_names=['dog', 'cat', 'bird'])
  np.testing.assert_array_equal(named.labels, [1, 0, -1])
  assert named.class_names == ('dog', 'cat', 'bird')
  with pytest.raises(errors.ConfigError, match=r"\['pool'\].*class_names"):
    data.image_folder(tmp_path, unlabeled_dir=None,
                      class_names=['cat', 'dog'])
  with pytest.raises(errors.ConfigError, match='unlabeled folder'):
    data.image_folder(tmp_path, unlabeled_dir='pool',
                      class_names=['cat', 'dog', 'pool'])


def test_only_unlabeled_images_need_class_names(tmp_path):
  save(tmp_path / 'unlabeled' / 'a.png', np.zeros((2, 2), np.uint8))
  with pytest.raises(errors.ConfigError, match='class_names'):
    data.image_folder(tmp_path)
  pool = data.image_folder(tmp_path, class_names=['x', 'y'])
  np.testing.assert_array_equal(pool.labels, [-1])


def test_missing_or_empty_folders_say_the_layout(tmp_path):
  with pytest.raises(errors.DatasetNotFoundError, match='root/<class name>'):
    data.image_folder(tmp_path / 'nowhere')
  with pytest.raises(errors.DatasetNotFoundError, match='no images'):
    data.image_folder(tmp_path)
  (tmp_path / 'cat').mkdir()
  (tmp_path / 'cat' / 'readme.txt').write_text('hi')
  with pytest.raises(errors.DatasetNotFoundError, match='root/<class name>'):
    data.image_folder(tmp_path)


def test_every_bad_image_is_reported_at_once(tmp_path):
  good = DIGITS[0]
  save(tmp_path / 'a' / 'good.png', good)
  save(tmp_path / 'b' / 'good.png', good)
  (tmp_path / 'a' / 'corrupt.png').write_bytes(b'this is not a png at all')
  (tmp_path / 'b' / 'empty.png').write_bytes(b'')
  big = np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)
  whole = png_bytes(big)
  (tmp_path / 'unlabeled').mkdir()
  (tmp_path / 'unlabeled' / 'truncated.png').write_bytes(
      whole[:len(whole) // 2])
  save(tmp_path / 'unlabeled' / 'wrong_size.png', np.zeros((9, 8), np.uint8))
  with pytest.raises(errors.CorruptDatasetError) as caught:
    data.image_folder(tmp_path)
  message = str(caught.value)
  assert message.startswith('4 problems in image folder')
  wheres = [where for where, _ in caught.value.problems]
  assert wheres == ['a/corrupt.png', 'b/empty.png', 'unlabeled/truncated.png',
                    'unlabeled/wrong_size.png']
  for where in wheres:
    assert where in message
  assert '/good.png:' not in message
  assert 'empty file' in message and 'not an image Pillow can read' in message
  assert '9x8' in message and 'a/good.png' in message  # Names the first.

  # Resizing makes the odd size fine; the unreadable files stay wrong.
  with pytest.raises(errors.CorruptDatasetError) as caught:
    data.image_folder(tmp_path, image_size=(8, 8))
  assert len(caught.value.problems) == 3


def test_long_problem_lists_are_cut(tmp_path):
  (tmp_path / 'a').mkdir()
  for i in range(25):
    (tmp_path / 'a' / f'{i:02d}.png').write_bytes(b'')
  with pytest.raises(errors.CorruptDatasetError) as caught:
    data.image_folder(tmp_path)
  lines = str(caught.value).splitlines()
  assert len(lines) == 1 + local.MAX_LISTED + 1
  assert lines[-1].strip() == '... and 5 more'
  assert len(caught.value.problems) == 25


def test_images_outside_folders_are_errors(tmp_path):
  save(tmp_path / 'a' / 'x.png', DIGITS[0])
  save(tmp_path / 'loose.png', DIGITS[0])
  with pytest.raises(errors.CorruptDatasetError, match='loose.png'):
    data.image_folder(tmp_path)


@pytest.mark.parametrize('image_size', [0, (8,), (8, -1), 'big', (8.0, 8)])
def test_bad_arguments(tmp_path, image_size):
  save(tmp_path / 'a' / 'x.png', DIGITS[0])
  with pytest.raises(errors.ConfigError, match='image_size'):
    data.image_folder(tmp_path, image_size=image_size)
  with pytest.raises(errors.ConfigError, match='channels'):
    data.image_folder(tmp_path, channels=2)
  with pytest.raises(errors.ConfigError, match='class_names'):
    data.image_folder(tmp_path, class_names='a')
  with pytest.raises(errors.ConfigError, match='unlabeled_dir'):
    data.image_folder(tmp_path, unlabeled_dir='a/b')


# Manifests.


def write_digit_files(directory, indices) -> list[str]:
  return [os.path.basename(save(os.path.join(directory, f'{i}.png'),
                                DIGITS[i])) for i in indices]


def test_csv_manifest(tmp_path):
  write_digit_files(tmp_path / 'img', [5, 6, 7])
  (tmp_path / 'm.csv').write_text(
      'path,id,label,notes\n'
      'img/5.png,z5,five,x\n'
      'img/6.png,a6,,y\n'
      f'{tmp_path}/img/7.png,m7,seven,z\n')
  pool = data.manifest(tmp_path / 'm.csv')
  assert pool.ids == ('a6', 'm7', 'z5')
  assert pool.class_names == ('five', 'seven')
  np.testing.assert_array_equal(pool.labels, [-1, 1, 0])
  np.testing.assert_array_equal(pool.images[..., 0],
                                DIGITS[[6, 7, 5]] / np.float32(255))
  assert pool.paths[0] == str(tmp_path / 'img' / '6.png')

  (tmp_path / 'other.csv').write_text('path,label\n5.png,5\n6.png,\n')
  pool = data.manifest(tmp_path / 'other.csv', root=tmp_path / 'img',
                       class_names=['4', '5'], channels=3, image_size=4)
  assert pool.ids == ('5.png', '6.png')
  assert pool.images.shape == (2, 4, 4, 3)
  np.testing.assert_array_equal(pool.labels, [1, -1])


def test_jsonl_manifest(tmp_path):
  write_digit_files(tmp_path, [1, 2, 3])
  lines = [{'path': '1.png', 'label': 10}, {'path': '2.png', 'label': None},
           {'path': '3.png', 'label': '2', 'id': 'three'}]
  (tmp_path / 'm.jsonl').write_text(
      '\n'.join(json.dumps(x) for x in lines) + '\n\n')
  pool = data.manifest(tmp_path / 'm.jsonl')
  assert pool.ids == ('1.png', '2.png', 'three')
  # Names that are all integers sort by value: '2' before '10'.
  assert pool.class_names == ('2', '10')
  np.testing.assert_array_equal(pool.labels, [1, -1, 0])
  np.testing.assert_array_equal(pool.images[..., 0],
                                DIGITS[[1, 2, 3]] / np.float32(255))


def test_manifest_problems_are_listed_by_line(tmp_path):
  write_digit_files(tmp_path, [1, 2])
  (tmp_path / 'bad.png').write_bytes(b'junk')
  (tmp_path / 'm.csv').write_text(
      'path,id,label\n'
      '1.png,one,cat\n'          # line 2: fine
      '2.png,one,cat\n'          # line 3: duplicate id
      'gone.png,,cat\n'          # line 4: no such file
      '2.png,two,horse\n'        # line 5: unknown class
      ',empty,cat\n'             # line 6: no path
      'bad.png,,dog\n')          # line 7: unreadable image
  with pytest.raises(errors.CorruptDatasetError) as caught:
    data.manifest(tmp_path / 'm.csv', class_names=['cat', 'dog'])
  assert [where for where, _ in caught.value.problems] == [
      'line 3', 'line 4', 'line 5', 'line 6', 'line 7 (bad.png)']
  problems = dict(caught.value.problems)
  assert "duplicate id 'one' (first on line 2)" in problems['line 3']
  assert 'gone.png' in problems['line 4']
  assert "'horse'" in problems['line 5']

  (tmp_path / 'm.jsonl').write_text(
      '{"path": "1.png"}\n{not json\n["2.png"]\n{"path": "2.png", '
      '"label": 1.5}\n')
  with pytest.raises(errors.CorruptDatasetError) as caught:
    data.manifest(tmp_path / 'm.jsonl', class_names=['a', 'b'])
  assert [w for w, _ in caught.value.problems] == ['line 2', 'line 3',
                                                   'line 4']


def test_manifest_refusals(tmp_path):
  write_digit_files(tmp_path, [1])
  (tmp_path / 'm.csv').write_text('file,label\n1.png,a\n')
  with pytest.raises(errors.CorruptDatasetError, match='no `path` column'):
    data.manifest(tmp_path / 'm.csv')
  (tmp_path / 'm.txt').write_text('1.png\n')
  with pytest.raises(errors.ConfigError, match='.csv'):
    data.manifest(tmp_path / 'm.txt')
  with pytest.raises(errors.DatasetNotFoundError):
    data.manifest(tmp_path / 'none.csv')
  (tmp_path / 'n.csv').write_text('path\n1.png\n')
  with pytest.raises(errors.ConfigError, match='class_names'):
    data.manifest(tmp_path / 'n.csv')
  (tmp_path / 'e.csv').write_text('path,label\n')
  with pytest.raises(errors.CorruptDatasetError, match='no images'):
    data.manifest(tmp_path / 'e.csv', class_names=['a', 'b'])


# Features.


def test_features(tmp_path):
  values = np.arange(12, dtype=np.float64).reshape(4, 3)
  np.save(tmp_path / 'f.npy', values)
  pool = data.features(tmp_path / 'f.npy', labels=[2, -1, 0, None])
  assert pool.images.dtype == np.float32
  np.testing.assert_array_equal(pool.images, values)
  assert pool.ids == ('0', '1', '2', '3') and pool.paths is None
  assert pool.class_names == ('0', '1', '2')
  np.testing.assert_array_equal(pool.labels, [2, -1, 0, -1])

  (tmp_path / 'ids.txt').write_text('d\nc\nb\na\n')
  named = data.features(tmp_path / 'f.npy', ids=tmp_path / 'ids.txt',
                        labels=['cat', None, 'dog', ''])
  assert named.ids == ('d', 'c', 'b', 'a')  # The file's row order is kept.
  assert named.class_names == ('cat', 'dog')
  np.testing.assert_array_equal(named.labels, [0, -1, 1, -1])
  unlabeled = data.features(tmp_path / 'f.npy', ids=['w', 'x', 'y', 'z'],
                            class_names=['a', 'b'])
  np.testing.assert_array_equal(unlabeled.labels, [-1] * 4)


def test_features_refusals(tmp_path):
  np.save(tmp_path / 'f.npy', np.zeros((3, 2)))
  path = tmp_path / 'f.npy'
  for kwargs, match in [
      (dict(ids=['a', 'b']), '2 ids for 3'),
      (dict(ids=['a', 'b', 'a']), 'duplicate'),
      (dict(labels=[0, 1]), '2 entries'),
      (dict(labels=[0, 1, 5], class_names=['a', 'b']), 'outside'),
      (dict(labels=[0, 'a', 1]), 'mix'),
      (dict(labels=np.array([0.0, 1.0, 1.0])), 'floats'),
      (dict(labels=['a', 'b', 'c'], class_names=['a', 'b']), "'c'"),
      (dict(), 'class_names'),
      (dict(labels=[-1, -1, -1]), 'class_names')]:
    with pytest.raises(errors.ConfigError, match=match):
      data.features(path, **kwargs)
  with pytest.raises(errors.DatasetNotFoundError):
    data.features(tmp_path / 'none.npy')
  np.save(tmp_path / 'cube.npy', np.zeros((2, 2, 2)))
  with pytest.raises(errors.CorruptDatasetError, match=r'\[N, D\]'):
    data.features(tmp_path / 'cube.npy', labels=[0, 1])
  np.save(tmp_path / 'nan.npy', np.array([[0.0, np.nan], [1.0, 2.0]]))
  with pytest.raises(errors.CorruptDatasetError, match=r'rows \[0\]'):
    data.features(tmp_path / 'nan.npy', labels=[0, 1])
  (tmp_path / 'junk.npy').write_bytes(b'junk')
  with pytest.raises(errors.CorruptDatasetError, match='numpy.save'):
    data.features(tmp_path / 'junk.npy', labels=[0, 1])


# Datasets.


def test_to_dataset_standardizes_with_the_pool_statistics(tmp_path):
  synthetic.write_digits_image_folder(tmp_path / 'pool', labeled_per_class=1,
                                      num_unlabeled=20, seed=1)
  synthetic.write_digits_image_folder(tmp_path / 'test', labeled_per_class=2,
                                      num_unlabeled=0, seed=2)
  pool = data.image_folder(tmp_path / 'pool')
  test = data.image_folder(tmp_path / 'test')
  dataset = data.to_dataset(pool, test, name='mine')
  raw = pool.images.astype(np.float64)
  mean, std = raw.mean(), raw.std()
  np.testing.assert_allclose(dataset.pool_images, (raw - mean) / std,
                             atol=1e-5)
  np.testing.assert_allclose(dataset.test_images,
                             (test.images - mean) / std, atol=1e-5)
  np.testing.assert_array_equal(dataset.pool_labels, pool.labels)
  np.testing.assert_array_equal(dataset.test_labels, test.labels)
  assert dataset.num_classes == 10 and dataset.name == 'mine'
  loop.check_dataset_contents(dataset, pool_labels_known=False)

  no_test = data.to_dataset(pool)
  assert no_test.test_images.shape == (0, 8, 8, 1)
  assert no_test.test_labels.shape == (0,)
  np.testing.assert_array_equal(no_test.pool_images, dataset.pool_images)


def test_to_dataset_standardizes_each_channel_and_feature(tmp_path):
  rng = np.random.default_rng(0)
  values = rng.normal([1.0, -5.0], [2.0, 0.1], (50, 2))
  np.save(tmp_path / 'f.npy', values)
  pool = data.features(tmp_path / 'f.npy', labels=[0, 1] * 25)
  dataset = data.to_dataset(pool, pool._replace(ids=tuple('x' * 50)))
  np.testing.assert_allclose(
      dataset.pool_images, (values - values.mean(0)) / values.std(0),
      atol=1e-5)


def test_to_dataset_refusals(tmp_path):
  synthetic.write_digits_image_folder(tmp_path, labeled_per_class=1,
                                      num_unlabeled=3)
  pool = data.image_folder(tmp_path)
  with pytest.raises(errors.ConfigError, match='no label'):
    data.to_dataset(pool, pool._replace(paths=None))
  labeled = pool._replace(images=pool.images[:10], labels=pool.labels[:10],
                          ids=pool.ids[:10], paths=pool.paths[:10])
  with pytest.raises(errors.ConfigError, match='both the pool and the test'):
    data.to_dataset(pool, labeled)
  with pytest.raises(errors.ConfigError, match='classes'):
    data.to_dataset(pool, labeled._replace(class_names=('a', 'b'),
                                           paths=None))
  with pytest.raises(errors.ConfigError, match='same image_size'):
    data.to_dataset(pool, labeled._replace(images=labeled.images[:, :4],
                                           paths=None))
  with pytest.raises(errors.ConfigError, match='at least 2'):
    data.to_dataset(pool._replace(class_names=('0',)))
  with pytest.raises(errors.ConfigError, match='LocalPool'):
    data.to_dataset(pool.images)
