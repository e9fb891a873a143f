"""Writes scikit-learn's digits as PNG folders, to try labeling campaigns on.

  python experiments/digits_folder.py --out=/tmp/digits_pngs

gives `OUT/pool/unlabeled/<index>.png` (the images to label; with
`--labeled_per_class=k` also `OUT/pool/<digit>/` folders of k labeled ones)
and `OUT/test/<digit>/<index>.png`, a held-out labeled set for accuracy.
The layout is the one `jal.data.image_folder` reads; see README, "Label your
own data".
"""

import os

from absl import flags

from jal import cli
from jal.data import digits

_OUT = flags.DEFINE_string('out', None, 'Directory to write.', required=True)
_NUM_UNLABELED = flags.DEFINE_integer('num_unlabeled', 1000,
                                      'Images in OUT/pool/unlabeled.')
_LABELED = flags.DEFINE_integer('labeled_per_class', 0,
                                'Labeled images per digit in OUT/pool.')
_TEST = flags.DEFINE_integer('test_per_class', 30,
                             'Images per digit in OUT/test.')
_SIZE = flags.DEFINE_integer('image_size', 16, 'Side in pixels (a multiple '
                             'of 8).')


def main(argv):
  del argv
  pool, test = os.path.join(_OUT.value, 'pool'), os.path.join(_OUT.value,
                                                             'test')
  if os.path.exists(pool) or os.path.exists(test):
    cli.fail(f'{_OUT.value} already holds pool/ or test/; pick a new --out.')
  if _SIZE.value < 8 or _SIZE.value % 8:
    cli.fail(f'--image_size={_SIZE.value}: use a multiple of 8.')
  written = digits.write_image_folder(
      pool, labeled_per_class=_LABELED.value,
      num_unlabeled=_NUM_UNLABELED.value, image_size=_SIZE.value,
      test_root=test, test_per_class=_TEST.value)
  print(f'wrote {len(written)} images to {pool} and '
        f'{10 * _TEST.value} to {test}')


if __name__ == '__main__':
  cli.run(main)
