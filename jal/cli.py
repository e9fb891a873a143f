"""The command line of the scripts in `experiments/`: absl with one-line errors.

A script defines its flags here and hands its `main` to `run`:

  _CONFIG = cli.define_config('configs/default.py', 'Experiment config file.')
  _WORKDIR = cli.define_workdir('Experiment directory.')

  if __name__ == '__main__':
    cli.run(main)

Problems a user can fix end the program with exit status 1 and one line on
stderr, `error: ...`, naming the file, flag or field and saying what to do:
a config file that does not exist, does not compile, lacks `get_config` or
fails in it; an override of a field the config lacks, or of a list field
(the command line sets tuples and strings); a bad flag value; a missing,
empty or unusable `--workdir`; any `OSError` (a full or read-only disk, with
the path) and any `jal.errors.JalError` raised by `main`. Files already
written are left as they were (jal writes them atomically). Anything else is
a bug and keeps its traceback.

The config file is checked, and loaded, by `run` rather than when the flag
is defined, so that nothing fails while the script's module is imported. JAX's
own INFO logs (which backends it tried) are silenced so that an error stays
the only line on stderr.
"""

import difflib
import errno
import importlib.util
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn

from absl import app
from absl import flags
import jax
import ml_collections
from ml_collections import config_flags

from jal import errors

FLAGS = flags.FLAGS
_CONFIG_FLAG = 'config'
# Checks of flag values run by `run` after parsing: name -> check(value).
_CHECKS: dict[str, Callable[[object], None]] = {}
_CONFIG_DEFAULT: list[str] = []  # the default config file, once defined

_ADVICE = {
    errno.ENOSPC: 'free some disk space or write elsewhere',
    errno.EDQUOT: 'free some of your disk quota or write elsewhere',
    errno.EACCES: 'check its permissions or write elsewhere',
    errno.EPERM: 'check its permissions or write elsewhere',
    errno.EROFS: 'its file system is read-only: write elsewhere',
    errno.ENOTDIR: 'a file stands where a directory is needed: use another '
                   'path',
    errno.EISDIR: 'a directory stands where a file is needed: use another path',
    errno.EEXIST: 'something is in the way: use another path',
    errno.ENOENT: 'check the path',
}


def fail(message: str) -> NoReturn:
  """Exits with status 1 and `error: <message>` as one line on stderr."""
  sys.exit('error: ' + ' '.join(str(message).split()))


def describe_os_error(e: OSError) -> str:
  """`e` with its path and what to do, for one line."""
  where = e.filename if e.filename is not None else 'a file (path unknown)'
  if e.filename2 is not None:
    where = f'{where} -> {e.filename2}'
  advice = _ADVICE.get(e.errno, 'check the path')
  return f'{where}: {e.strerror or e}; {advice}.'


def define_config(default: str, help_text: str) -> flags.FlagHolder:
  """Defines `--config`, an ml_collections config file, and its overrides.

  Args:
    default: the config file used without `--config`.
    help_text: the flag's help.

  Returns:
    The flag; its value is the config with the overrides applied.
  """
  _CONFIG_DEFAULT.append(default)
  # No default here: config_flags would load it (and apply the overrides on
  # the command line) while the script's module is imported, before any
  # error can be reported; `run` passes it on the command line instead.
  return config_flags.DEFINE_config_file(
      _CONFIG_FLAG, None, f'{help_text} (default: {default})',
      lock_config=True)


def _check_workdir(value) -> None:
  """Refuses a `--workdir` that cannot hold a directory of results."""
  if value is None:
    fail('--workdir is missing: give the directory for the results, e.g. '
         '--workdir=/tmp/jal.')
  if not value.strip():
    fail('--workdir is empty: give the directory for the results, e.g. '
         '--workdir=/tmp/jal.')
  if os.path.lexists(value) and not os.path.isdir(value):
    fail(f'--workdir={value} is a file, not a directory: give another path.')
  parent = os.path.abspath(value)
  while not os.path.lexists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    fail(f'--workdir={value} lies under {parent}, which is a file: give '
         'another path.')
  if not os.access(parent, os.W_OK | os.X_OK):
    fail(f'--workdir={value}: {parent} is not writable: give a directory '
         'you can write.')


def define_workdir(help_text: str) -> flags.FlagHolder:
  """Defines the required `--workdir`, checked by `run` before `main`."""
  _CHECKS['workdir'] = _check_workdir
  return flags.DEFINE_string('workdir', None, help_text)


def define_compilation_cache() -> flags.FlagHolder:
  """--compilation_cache: where XLA's persistent compilation cache lives."""
  return flags.DEFINE_string(
      'compilation_cache', None, 'Directory of the persistent XLA '
      "compilation cache (default WORKDIR/jax_cache; 'none' turns it off).")


def use_compilation_cache(value: str | None, workdir: str) -> None:
  """Turns on the persistent cache at `value` (default WORKDIR/jax_cache).

  Cells of a grid compile the same programs, so on a small CPU the cache
  spares most of a small cell's time.
  """
  cache = value or os.path.join(workdir, 'jax_cache')
  if cache != 'none':
    jax.config.update('jax_compilation_cache_dir', cache)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.2)


def _flag_value(argv: Sequence[str], name: str) -> str | None:
  """The last value given to `--name` in `argv` (`--name=V` or `--name V`)."""
  value = None
  for i, arg in enumerate(argv[1:], 1):
    if arg == '--':
      break
    match = re.fullmatch(rf'--?{name}(=(.*))?', arg, re.DOTALL)
    if match:
      value = (match.group(2) if match.group(1) is not None
               else argv[i + 1] if i + 1 < len(argv) else None)
  return value


def _overrides(argv: Sequence[str]) -> list[str]:
  """The dotted fields that `--config.<field>` arguments set, in order."""
  fields = []
  for arg in argv[1:]:
    if arg == '--':
      break
    match = re.match(rf'--?(?:no)?{_CONFIG_FLAG}\.([^=]+)', arg)
    if match:
      fields.append(match.group(1))
  return fields


def _where(path: str, e: BaseException) -> str:
  """`path, line N` of the innermost frame of `e` in `path`."""
  lines = [frame.lineno for frame in traceback.extract_tb(e.__traceback__)
           if os.path.abspath(frame.filename) == os.path.abspath(path)]
  return f'{path}, line {lines[-1]}' if lines else path


def load_config_file(path: str, what: str = '--config'):
  """The config that `path`'s `get_config()` returns, or a one-line exit.

  `path` may end in `:ARG`, passed to `get_config` as config_flags does.
  """
  file, *args = path.split(':', 1)
  if not os.path.isfile(file):
    fail(f'config file {file!r} ({what}) does not exist: give the path of a '
         'config file, e.g. --config=configs/default.py.')
  try:
    with open(file, 'rb') as f:
      compile(f.read(), file, 'exec')
  except SyntaxError as e:
    fail(f'config file {file}, line {e.lineno}: {e.msg}; fix the file.')
  except (OSError, ValueError) as e:
    fail(f'config file {file} cannot be read ({e}); fix the file.')
  spec = importlib.util.spec_from_file_location('jal_cli_config', file)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
    get_config = getattr(module, 'get_config', None)
    if not callable(get_config):
      fail(f'config file {file} has no get_config() function: define one '
           'that returns the config.')
    config = get_config(*args)
  except Exception as e:  # pylint: disable=broad-except
    fail(f'config file {_where(file, e)}: {type(e).__name__}: {e}; fix the '
         'file.')
  if not isinstance(config, ml_collections.ConfigDict):
    fail(f'config file {file}: get_config() returned '
         f'{type(config).__name__}, not an ml_collections.ConfigDict.')
  return config


def check_overrides(config: ml_collections.ConfigDict, file: str,
                    fields: Sequence[str]) -> None:
  """Refuses `--config.<field>` overrides that config_flags cannot apply."""
  for field in fields:
    node = config
    parts = field.split('.')
    for i, part in enumerate(parts):
      if not isinstance(node, ml_collections.ConfigDict):
        break  # a placeholder or a leaf: config_flags reports the rest
      if part not in node:
        known = list(node.keys())
        close = difflib.get_close_matches(part, known, n=1)
        hint = f' (did you mean {close[0]!r}?)' if close else ''
        prefix = '.'.join(['config', *parts[:i]])
        fail(f'--config.{field}: {prefix} in {file} has no field {part!r}'
             f'{hint}; check the spelling.')
      node = node[part]
    if isinstance(node, list):
      fail(f'--config.{field}: config.{field} is a list in {file}, which the '
           'command line cannot set: make it a tuple or a comma-separated '
           'string in the file.')


def _parse_flags(argv: Sequence[str]) -> list[str]:
  """Parses `argv` into FLAGS; problems end the program with one line."""
  argv = list(argv)
  if _CONFIG_DEFAULT:
    given = _flag_value(argv, _CONFIG_FLAG)
    if given is None:
      given = _CONFIG_DEFAULT[0]
      argv.insert(1, f'--{_CONFIG_FLAG}={given}')
    check_overrides(load_config_file(given), given.split(':', 1)[0],
                    _overrides(argv))
  try:
    rest = FLAGS(argv)
  except flags.Error as e:
    fail(f'{str(e).splitlines()[0] if str(e) else e} (see --help).')
  for name, check in _CHECKS.items():
    check(FLAGS[name].value)
  return rest


def _guarded(main: Callable[[list[str]], object], argv: list[str]):
  try:
    return main(argv)
  except errors.JalError as e:
    fail(str(e))
  except OSError as e:
    fail(describe_os_error(e))


def _no_arguments(main: Callable[[list[str]], object]):
  """`main`, refusing positional arguments (a flag missing its `--`)."""

  def checked(argv):
    if len(argv) > 1:
      fail(f'unexpected argument {argv[1]!r}: this script takes only flags '
           '(--config=..., --workdir=...; see --help).')
    return main(argv)

  return checked


def run(main: Callable[[list[str]], object],
        positional_arguments: bool = False) -> None:
  """`absl.app.run(main)` with the one-line errors of the module docstring.

  Args:
    main: the script's `main(argv)`.
    positional_arguments: whether `main` takes arguments besides flags;
      otherwise any is refused.
  """
  logging.getLogger('jax').setLevel(logging.WARNING)
  if not positional_arguments:
    main = _no_arguments(main)
  app.run(lambda argv: _guarded(main, argv), flags_parser=_parse_flags)
