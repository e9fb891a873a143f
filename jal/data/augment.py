"""Training-time augmentation: random crops of padded images and random flips.

Pure, jittable functions with fixed shapes. `random_crop_flip` is the one
training uses; `draw_crop_flip` and `crop_flip` are its two halves, exposed so
the random draw and the deterministic transform can be checked separately.
"""

import jax
import jax.numpy as jnp


def draw_crop_flip(key: jax.Array, batch_size: int, *, padding: int,
                   flip: bool) -> tuple[jax.Array, jax.Array]:
  """Draws per-image crop offsets and flip decisions.

  Args:
    key: PRNG key.
    batch_size: B.
    padding: P; offsets are uniform in [0, 2P].
    flip: if False no image is flipped.

  Returns:
    `(offsets, flips)`: offsets [B, 2] int32, the (row, column) of each
    crop's top-left corner in the padded image; flips [B] bool, each True
    with probability 1/2 if `flip`.
  """
  crop_key, flip_key = jax.random.split(key)
  offsets = jax.random.randint(crop_key, (batch_size, 2), 0, 2 * padding + 1)
  if flip:
    flips = jax.random.bernoulli(flip_key, 0.5, (batch_size,))
  else:
    flips = jnp.zeros((batch_size,), bool)
  return offsets, flips


def crop_flip(images: jax.typing.ArrayLike, offsets: jax.typing.ArrayLike,
              flips: jax.typing.ArrayLike, *, padding: int) -> jax.Array:
  """Zero-pads, crops each image back to H x W, and flips it left-right.

  Args:
    images: [B, H, W, C].
    offsets: [B, 2] int, top-left corner of each crop in the padded image,
      each coordinate in [0, 2 * padding].
    flips: [B] bool, which crops to mirror horizontally.
    padding: P, zeros added on every side of the height and width.

  Returns:
    [B, H, W, C], the dtype of `images`.
  """
  images = jnp.asarray(images)
  _, height, width, channels = images.shape
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding),
                            (0, 0)))

  def crop(image, offset):
    start = (offset[0], offset[1], 0)
    return jax.lax.dynamic_slice(image, start, (height, width, channels))

  crops = jax.vmap(crop)(padded, jnp.asarray(offsets))
  return jnp.where(jnp.asarray(flips)[:, None, None, None],
                   crops[:, :, ::-1], crops)


def random_crop_flip(key: jax.Array, images: jax.typing.ArrayLike, *,
                     padding: int = 4, flip: bool = True) -> jax.Array:
  """Random crop of the zero-padded image, then a random horizontal flip.

  The standard CIFAR augmentation. Jit with `padding` and `flip` static.

  Args:
    key: PRNG key; split into a crop key and a flip key.
    images: [B, H, W, C].
    padding: P; each crop is shifted by up to P pixels in each direction.
    flip: whether to mirror each image left-right with probability 1/2.

  Returns:
    [B, H, W, C], the dtype of `images`.
  """
  batch_size = jnp.shape(images)[0]
  offsets, flips = draw_crop_flip(key, batch_size, padding=padding, flip=flip)
  return crop_flip(images, offsets, flips, padding=padding)
