"""Several processes, one experiment: jal on `jax.distributed`.

JAX is the distributed engine: one process per host joins the others with
`jax.distributed.initialize`, and JAX's collectives (gloo on CPU) carry
every exchange. jal adds no scheduler or transport of its own; this module
only reads where to meet, and offers the few collectives the sharded
selection and the multi-process loop use:

- `initialize()` joins the processes named by `JAL_COORDINATOR_ADDRESS`
  (`host:port` of process 0), `JAL_NUM_PROCESSES` and `JAL_PROCESS_ID`; with
  none of them set it does nothing and jal runs as one process.
- `gather(tree)` gives every process every process's `tree`, stacked on a
  new leading axis in process order (`x[None]` in one process).
- `process_rows(num_rows)` is this process's contiguous shard of the pool.
- `is_writer()` (process 0 writes the work directory) and `barrier(name)`.
- `check_replicated(tree, what)` fails loudly when a tree that must be the
  same in every process (the trained model, the labeled set) is not.

Every process must make the same calls in the same order: a collective that
one process skips waits for it forever (`experiments/launch.py` stops the
others when one dies).
"""

import errno
import hashlib
import json
import os
import re
import socket
import time

import jax
from jax.experimental import multihost_utils
import numpy as np

from jal import errors

COORDINATOR_ENV = 'JAL_COORDINATOR_ADDRESS'
NUM_PROCESSES_ENV = 'JAL_NUM_PROCESSES'
PROCESS_ID_ENV = 'JAL_PROCESS_ID'
ENV_VARS = (COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV)

# (coordinator_address, num_processes, process_id) once initialized.
_joined: tuple[str, int, int] | None = None


class ReplicationError(errors.JalError, RuntimeError):
  """Processes that must hold the same values (model, labeled set) differ."""


def requested() -> bool:
  """Whether any of the `JAL_*` environment variables asks for processes."""
  return any(os.environ.get(name) for name in ENV_VARS)


def _parse_int(value, name: str, source: str) -> int:
  if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
    return int(value)
  if isinstance(value, str) and re.fullmatch(r'\s*\d+\s*', value):
    return int(value)
  raise errors.ConfigError(
      f'{source} must be a non-negative integer, got {value!r}; set it to '
      f'the {name}.')


def check_address(address: str, source: str = 'coordinator_address') -> str:
  """`address` if it is `host:port` with a port in [1, 65535], else raises."""
  match = re.fullmatch(r'(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d+)',
                       str(address).strip())
  if not match or not 1 <= int(match.group(2)) <= 65535:
    raise errors.ConfigError(
        f'{source} = {address!r} is not host:port (e.g. 10.0.0.1:29500 or '
        '127.0.0.1:29500, port in [1, 65535]); give the address of process '
        '0 and a free port on it.')
  return str(address).strip()


def _settings(coordinator_address, num_processes, process_id):
  """The three settings from the arguments, else the environment, checked.

  Returns None when nothing asks for more than one process.
  """
  given = {COORDINATOR_ENV: coordinator_address,
           NUM_PROCESSES_ENV: num_processes, PROCESS_ID_ENV: process_id}
  source = {name: ('argument ' + arg if given[name] is not None else name)
            for name, arg in zip(ENV_VARS, ('coordinator_address',
                                            'num_processes', 'process_id'))}
  for name in ENV_VARS:
    if given[name] is None and os.environ.get(name):
      given[name] = os.environ[name]
  if all(value is None for value in given.values()):
    return None
  if given[NUM_PROCESSES_ENV] is not None and given[COORDINATOR_ENV] is None \
      and given[PROCESS_ID_ENV] is None and _parse_int(
          given[NUM_PROCESSES_ENV], 'number of processes',
          source[NUM_PROCESSES_ENV]) == 1:
    return None  # one process asked for explicitly
  missing = [name for name, value in given.items() if value is None]
  if missing:
    raise errors.ConfigError(
        f'A multi-process run needs {", ".join(ENV_VARS)}; '
        f'{", ".join(missing)} {"is" if len(missing) == 1 else "are"} not '
        'set. Set all three on every process (experiments/launch.py does '
        'it for local processes), or none of them for one process.')
  address = check_address(given[COORDINATOR_ENV], source[COORDINATOR_ENV])
  count = _parse_int(given[NUM_PROCESSES_ENV], 'number of processes',
                     source[NUM_PROCESSES_ENV])
  index = _parse_int(given[PROCESS_ID_ENV], "process's index",
                     source[PROCESS_ID_ENV])
  if count < 1:
    raise errors.ConfigError(
        f'{source[NUM_PROCESSES_ENV]} = {count}: there must be at least one '
        'process.')
  if not 0 <= index < count:
    raise errors.ConfigError(
        f'{source[PROCESS_ID_ENV]} = {index} is outside [0, {count}) for '
        f'{count} processes; number the processes 0 to {count - 1}, with 0 '
        'on the coordinator host.')
  return address, count, index


def _check_port_free(port: int, address: str) -> None:
  """Raises `ConfigError` if process 0 cannot listen on `port`."""
  with socket.socket() as s:
    # As a server does: only a listening socket makes the bind fail.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
      s.bind(('', port))
    except OSError as e:
      if e.errno != errno.EADDRINUSE:
        return  # cannot tell here; JAX will say
      raise errors.ConfigError(
          f'Process 0 cannot listen on port {port} of {address} '
          f'({e.strerror or e}): another program (an earlier run?) holds it. '
          'Pick a free port for JAL_COORDINATOR_ADDRESS on every process '
          '(experiments/launch.py picks one itself).') from None


def _wait_for(host: str, port: int, timeout_seconds: float, address: str,
              index: int, count: int) -> None:
  """Waits until the coordinator at host:port accepts connections."""
  deadline = time.monotonic() + timeout_seconds
  while True:
    try:
      with socket.create_connection((host, port), timeout=2):
        return
    except OSError as e:
      if time.monotonic() > deadline:
        raise errors.ConfigError(
            f'Process {index} of {count} could not reach the coordinator at '
            f'{address} within {timeout_seconds} s ({e.strerror or e}). '
            'Start process 0 with the same JAL_COORDINATOR_ADDRESS (its '
            'host\'s address, reachable from this host, and a free port).'
        ) from None
      time.sleep(0.2)


def initialize(coordinator_address: str | None = None,
               num_processes: int | None = None,
               process_id: int | None = None,
               timeout_seconds: int = 120) -> None:
  """Joins the other processes of a run (a no-op for one process).

  Arguments not given are read from `JAL_COORDINATOR_ADDRESS`,
  `JAL_NUM_PROCESSES` and `JAL_PROCESS_ID`. With none set (or only
  `JAL_NUM_PROCESSES=1`) jal runs as one process and nothing happens. On
  CPU the collectives are gloo's. Calling it again with the same settings
  does nothing. Call it before any other JAX work.

  Args:
    coordinator_address: `host:port` of process 0, reachable by all.
    num_processes: how many processes the run has.
    process_id: this process's index in [0, num_processes).
    timeout_seconds: how long to wait for every process to join.

  Raises:
    ConfigError: a setting is missing or malformed (a bad address, an id
      out of range), or the processes disagree on their number.
  """
  global _joined
  settings = _settings(coordinator_address, num_processes, process_id)
  if settings is None:
    return
  if _joined is not None:
    if _joined != settings:
      raise errors.ConfigError(
          f'jal.distributed is already initialized as {_joined} and cannot '
          f'join again as {settings}; initialize once per process.')
    return
  address, count, index = settings
  # JAX aborts the process (no Python error) when the coordinator cannot
  # be started or reached: check both first, to say what is wrong.
  host, port = address.rsplit(':', 1)
  host, port = host.strip('[]'), int(port)
  if index == 0 and count > 1:
    _check_port_free(port, address)
  elif index > 0:
    _wait_for(host, port, timeout_seconds, address, index, count)
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  try:
    jax.distributed.initialize(coordinator_address=address,
                               num_processes=count, process_id=index,
                               initialization_timeout=timeout_seconds)
  except Exception as e:  # pylint: disable=broad-except
    reason = (str(e).splitlines()[0] if str(e) else '').rstrip('.')
    if 'before any JAX' in reason:
      advice = ('Call jal.distributed.initialize() first, before any other '
                'JAX work in the process (creating a key or an array '
                'already starts JAX).')
    else:
      advice = ('Start every process with the same address and count, '
                'process 0 reachable at that address on a free port, each '
                f'id once, all within {timeout_seconds} s.')
    raise errors.ConfigError(
        f'Process {index} of {count} could not join the coordinator at '
        f'{address}: {type(e).__name__}: {reason}. {advice}') from None
  _joined = settings
  counts = gather(np.asarray([count, index], np.int32))
  if (jax.process_count() != count or np.any(counts[:, 0] != count) or
      sorted(counts[:, 1].tolist()) != list(range(count))):
    raise errors.ConfigError(
        f'The processes disagree on the run: (count, id) per process '
        f'{counts.tolist()}, JAX sees {jax.process_count()} processes. '
        'Start every process with the same JAL_NUM_PROCESSES and distinct '
        'ids.')


def free_port(host: str = '127.0.0.1') -> int:
  """A TCP port on `host` that nothing listens on right now (for a
  coordinator started soon after; another program may take it meanwhile)."""
  with socket.socket() as s:
    s.bind((host, 0))
    return s.getsockname()[1]


def num_processes() -> int:
  return jax.process_count()


def process_index() -> int:
  return jax.process_index()


def is_writer() -> bool:
  """Whether this process writes shared files (process 0)."""
  return jax.process_index() == 0


def gather(tree):
  """Every process's `tree`, stacked in process order.

  Args:
    tree: a pytree of arrays whose shapes and dtypes are the same in every
      process.

  Returns:
    The tree with NumPy leaves `[P, ...]` (P processes), identical in every
    process; `x[None]` for one process.
  """
  if jax.process_count() == 1:
    return jax.tree.map(lambda x: np.asarray(x)[None], tree)
  bools = jax.tree.map(lambda x: np.asarray(x).dtype == bool, tree)
  # Gloo reduces numbers; booleans travel as uint8.
  tree = jax.tree.map(lambda x: np.asarray(x).astype(np.uint8)
                      if np.asarray(x).dtype == bool else np.asarray(x), tree)
  gathered = multihost_utils.process_allgather(tree, tiled=False)
  return jax.tree.map(lambda x, b: np.asarray(x).astype(bool) if b
                      else np.asarray(x), gathered, bools)


def broadcast(tree):
  """Process 0's `tree` in every process (itself for one process).

  Args:
    tree: a pytree of arrays (PRNG keys allowed) whose structure, shapes and
      dtypes are the same in every process; only process 0's values count.
  """
  if jax.process_count() == 1:
    return tree
  leaves, treedef = jax.tree.flatten(tree)
  impls = [jax.random.key_impl(x) if jax.dtypes.issubdtype(
      getattr(x, 'dtype', None), jax.dtypes.prng_key) else None
           for x in leaves]
  raw = [np.asarray(jax.random.key_data(x)) if impl is not None
         else np.asarray(x) for x, impl in zip(leaves, impls)]
  # As unsigned integers of the same width: the sum with the zeros of the
  # other processes is then exact, bit for bit (-0.0 and NaNs included).
  sent = multihost_utils.broadcast_one_to_all(
      [np.ascontiguousarray(x).view(f'u{x.dtype.itemsize}') for x in raw])
  out = []
  for x, r, impl in zip(sent, raw, impls):
    x = np.asarray(x).astype(f'u{r.dtype.itemsize}').view(r.dtype).reshape(
        r.shape)
    out.append(jax.random.wrap_key_data(x, impl=impl) if impl is not None
               else x)
  return jax.tree.unflatten(treedef, out)


def broadcast_json(value):
  """Process 0's JSON-serializable `value` in every process."""
  if jax.process_count() == 1:
    return value
  data = np.frombuffer(json.dumps(value).encode(), np.uint8)
  size = int(broadcast(np.int32(data.size)))
  padded = np.zeros((size,), np.uint8)
  padded[:min(size, data.size)] = data[:size]
  return json.loads(broadcast(padded).tobytes().decode())


def barrier(name: str) -> None:
  """Waits until every process reaches `barrier(name)` (no-op for one)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def process_rows(num_rows: int):
  """This process's contiguous shard of `num_rows` pool rows.

  Returns:
    `jal.stream.Rows`; shard sizes differ by at most one, lower processes
    holding the larger ones.
  """
  from jal import stream  # pylint: disable=g-import-not-at-top
  return stream.shard_rows(num_rows, jax.process_count(), jax.process_index())


def checksum(tree) -> np.ndarray:
  """[2] uint32, a hash of `tree`'s leaves (bytes, shapes and dtypes)."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(tree):
    if jax.dtypes.issubdtype(getattr(leaf, 'dtype', None),
                             jax.dtypes.prng_key):
      leaf = jax.random.key_data(leaf)
    leaf = np.ascontiguousarray(np.asarray(leaf))
    digest.update(f'{leaf.dtype}{leaf.shape}'.encode())
    digest.update(leaf.tobytes())
  return np.frombuffer(digest.digest()[:8], np.uint32).copy()


def check_replicated(tree, what: str) -> None:
  """Raises `ReplicationError` unless `tree` is bitwise equal everywhere.

  Args:
    tree: a pytree that every process must hold the same (e.g. the trained
      model's variables, the labeled mask).
    what: what it is, for the message.
  """
  if jax.process_count() == 1:
    return
  sums = gather(checksum(tree))
  differ = [i for i in range(sums.shape[0]) if np.any(sums[i] != sums[0])]
  if differ:
    raise ReplicationError(
        f'{what} differs between processes (processes {differ} differ from '
        'process 0). Every process must run the same jal and JAX versions '
        'with the same config and data on the same kind of machine (CPU '
        'type, device count), or its results differ from a one-process '
        'run.')
