"""Feeds 150+ bad or hostile inputs to a jal checkout and grades its answers.

The inventory behind issue 14 ("hostile inputs"): what a new user gets from
`experiments/run.py`, `benchmark.py`, `report.py` and the Python API when the
input is wrong (a field out of range, damaged files, a kill mid-run) or odd
but valid (a resume after SIGKILL). Every case runs against the checkout given
by `--repo`: scripts as `python REPO/experiments/X.py` and Python-API cases in
a worker process (`--worker`), both with `PYTHONPATH=REPO`, so the probed tree
is the one imported.

  python experiments/probe_inputs.py --repo=/path/to/jal --out=probe.json
  python experiments/probe_inputs.py --repo=. --only='^c6' --timeout=60

One line per case, `id  class  verdict  message`, then the counts. Verdicts:

- clear: refused with exit status != 0 and ONE stderr line (absl and JAX
  log or warning noise aside) that starts with `error:`, `usage:` or absl's
  `FATAL Flags parsing error:` (its `Pass --helpshort` hint is noise) and
  names what the case says it must name; for API cases, a `JalError`,
  `ValueError` or `FileNotFoundError` raised by jal (not a raw `[Errno]`
  OS error) with a one-line message naming it.
- handled: a valid-but-odd input that ran and gave the right result.
- traceback: refused, but with a traceback, several lines, an obscure JAX or
  NumPy error, or a message that does not name the thing.
- silent: exit 0 (no exception) although the input should have been refused,
  or a wrong or degenerate result (e.g. a rejected config left the work
  directory claimed).
- lost: records or summary differ from an uninterrupted run after a kill,
  a resume or damage.
- hang: the case ran past its timeout.
- skipped: the case cannot be run here (e.g. a read-only directory as root).

Each case declares its class (1-10, the defect classes of issue 14), its
entry point, its input, what it expects (`error` naming one of some
substrings, `runs`, or `either`: a clear refusal or a correct run) and how it
is judged.
"""

import argparse
import collections
import dataclasses
import gzip
import json
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable

VERDICTS = ('clear', 'handled', 'traceback', 'silent', 'lost', 'hang',
            'skipped')
CLASSES = {
    1: 'lost records', 2: 'stale results reused', 3: 'broken training',
    4: 'strategy hyperparameters', 5: 'rejected config claims workdir',
    6: 'damaged state', 7: 'dataset contents', 8: 'public primitives',
    9: 'grid mistakes', 10: 'ordinary problems'}
TINY = dict(num_epochs=1, initial_size=20, query_size=10, num_rounds=1)
MNIST_DIRS = ('/work/shared/datasets/mnist', '../shared/datasets/mnist')
_MARK = '@@probe '


@dataclasses.dataclass
class Case:
  """One hostile input.

  Attributes:
    id: short unique name, prefixed by its class (`c3_...`).
    cls: defect class of issue 14 (1-10).
    entry: 'run', 'benchmark', 'report' or 'api'.
    input: what is fed, in words.
    expect: 'error', 'runs' or 'either'.
    names: substrings (any one, case-insensitive) a clear error must hold.
    judge: `judge(ctx) -> (verdict, message)`, run in the probe (scripts)
      or in the worker (API cases, `judge()` with no argument).
  """
  id: str
  cls: int
  entry: str
  input: str
  expect: str
  names: tuple[str, ...]
  judge: Callable


CASES: list[Case] = []


def _add(case: Case) -> None:
  assert case.id not in {c.id for c in CASES}, case.id
  CASES.append(case)


class Verdict(Exception):
  """Raised by a judge to give a verdict directly."""

  def __init__(self, verdict: str, message: str):
    super().__init__(message)
    self.verdict = verdict
    self.message = message


# --------------------------------------------------------------------------
# Running scripts and judging what they print.

_NOISE = [
    re.compile(r'^[IWEFD]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+\s+\S+:\d+\]'),
    re.compile(r'^Pass --helpshort or --helpfull'),
    re.compile(r'^WARNING:'),
    re.compile(r'^\S.*:\d+: \w*Warning: '),
    re.compile(r'^\s+warnings\.warn\('),
    re.compile(r'^An NVIDIA GPU may be present'),
]
_RAISED = re.compile(r'^[A-Za-z_][\w.]*(Error|Exception|Exit)\b')
_HEADS = ('error:', 'usage:', 'FATAL Flags parsing error:')


@dataclasses.dataclass
class Res:
  rc: int | None
  stdout: str
  stderr: str
  timed_out: bool
  seconds: float


def meaningful_lines(stderr: str) -> list[str]:
  """stderr's non-empty lines without absl/JAX log and warning noise."""
  lines, after_warning = [], False
  for line in stderr.splitlines():
    if not line.strip():
      continue
    if any(p.search(line) for p in _NOISE):
      after_warning = 'Warning: ' in line
      continue
    if after_warning and line.startswith('  '):
      continue  # the source line Python prints under a warning
    after_warning = False
    lines.append(line)
  return lines


def _names_ok(message: str, names) -> bool:
  return not names or any(n.lower() in message.lower() for n in names)


def judge_refusal(res: Res, names) -> tuple[str, str]:
  """Verdict of a script run that should have been refused."""
  if res.timed_out:
    return 'hang', f'no answer after {res.seconds:.0f} s'
  lines = meaningful_lines(res.stderr)
  first = lines[0] if lines else '(no message)'
  if res.rc == 0:
    return 'silent', f'exit 0: {_last_stdout(res)}'
  if 'Traceback (most recent call last)' in res.stderr:
    raised = [l for l in lines if _RAISED.match(l)]
    return 'traceback', f'traceback: {(raised or lines or [first])[-1]}'
  if len(lines) != 1:
    return 'traceback', f'{len(lines)} lines: {first}'
  if not first.startswith(_HEADS):
    return 'traceback', f'not an error line: {first}'
  if not _names_ok(first, names):
    return 'traceback', f'does not name {"/".join(names)}: {first}'
  return 'clear', first


def _last_stdout(res: Res) -> str:
  lines = [l for l in res.stdout.splitlines() if l.strip()]
  return lines[-1] if lines else '(no output)'


class Ctx:
  """Paths, subprocess helpers and cached reference runs of one probe."""

  def __init__(self, repo: str, root: str, timeout: float):
    self.repo = os.path.abspath(repo)
    self.root = root
    self.timeout = timeout
    self._refs = {}
    self._count = 0
    self.env = dict(os.environ)
    self.env['PYTHONPATH'] = self.repo
    self.env['JAX_PLATFORMS'] = 'cpu'
    self.env.pop('JAL_DATA_DIR', None)

  def tmp(self, tag: str = 'd') -> str:
    """A new empty directory."""
    self._count += 1
    path = os.path.join(self.root, f'{self._count:03d}_{tag}')
    os.makedirs(path)
    return path

  def wd(self, tag: str = 'wd') -> str:
    """A path for a work directory that does not exist yet."""
    return os.path.join(self.tmp(tag), 'work')

  def config(self, name: str = 'default.py') -> str:
    return os.path.join(self.repo, 'configs', name)

  def script(self, name: str, args, cwd: str | None = None,
             timeout: float | None = None, python_args=()) -> Res:
    """Runs `python REPO/experiments/NAME args` and collects its output."""
    cmd = [sys.executable, *python_args]
    if name:
      cmd.append(os.path.join(self.repo, 'experiments', name))
    return self.command(cmd + list(args), cwd, timeout)

  def command(self, cmd, cwd=None, timeout=None) -> Res:
    cwd = cwd or self.tmp('cwd')
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=self.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
      out, err = proc.communicate(timeout=timeout or self.timeout)
      timed_out = False
    except subprocess.TimeoutExpired:
      os.killpg(proc.pid, signal.SIGKILL)
      out, err = proc.communicate()
      timed_out = True
    return Res(proc.returncode, out, err, timed_out, time.monotonic() - start)

  def run(self, workdir: str, *args, tiny: dict | None = None,
          config: str | None = None, **kwargs) -> Res:
    """run.py on `workdir` with the tiny digits settings, then `args`."""
    fields = dict(TINY, **(tiny or {}))
    # A --config or --workdir of the case's own goes first: absl wants
    # --config before its --config.FIELD overrides.
    flags = [a for a in args if a.startswith(('--config=', '--workdir='))]
    args = [a for a in args if a not in flags]
    if not any(a.startswith('--config=') for a in flags):
      flags.append(f'--config={config or self.config()}')
    if not any(a.startswith('--workdir=') for a in flags):
      flags.append(f'--workdir={workdir}')
    flags += [f'--config.{k}={v}' for k, v in fields.items()
              if not any(a.startswith(f'--config.{k}=') for a in args)]
    return self.script('run.py', flags + list(args), **kwargs)

  def bench_config(self, body: str = '') -> str:
    """A benchmark config file: 2 strategies, 1 seed, tiny cells, + body."""
    path = os.path.join(self.tmp('benchcfg'), 'bench.py')
    with open(path, 'w') as f:
      f.write(_BENCH_TEMPLATE.format(body='\n'.join(
          '  ' + line for line in body.splitlines())))
    return path

  def bench(self, workdir: str, *args, body: str = '', **kwargs) -> Res:
    return self.script('benchmark.py', [
        f'--config={self.bench_config(body)}', f'--workdir={workdir}',
        '--compilation_cache=none', *args], **kwargs)

  def reference(self, key: str, make: Callable[[str], Res]) -> str:
    """The work directory of a finished reference run, made once."""
    if key not in self._refs:
      workdir = self.wd(f'ref_{key}')
      res = make(workdir)
      if res.rc != 0:
        raise RuntimeError(f'reference run {key} failed: {res.stderr[-2000:]}')
      self._refs[key] = workdir
    return self._refs[key]

  def ref_run(self, rounds: int = 1) -> str:
    return self.reference(f'run{rounds}', lambda w: self.run(
        w, tiny=dict(num_rounds=rounds)))

  def ref_bench(self) -> str:
    return self.reference('bench', lambda w: self.bench(w))

  def copy_of(self, workdir: str, tag: str = 'copy') -> str:
    dst = self.wd(tag)
    shutil.copytree(workdir, dst, symlinks=True)
    return dst

  def mnist(self) -> str:
    """A data dir holding a copy of the MNIST files (mnist/*.gz)."""
    for src in MNIST_DIRS:
      if os.path.isdir(src):
        break
    else:
      raise Verdict('skipped', 'no MNIST copy found in ' + ', '.join(MNIST_DIRS))
    root = self.tmp('data')
    dst = os.path.join(root, 'mnist')
    os.makedirs(dst)
    for name in os.listdir(src):
      if name.endswith('.gz'):
        shutil.copy(os.path.join(src, name), dst)
    return root


_BENCH_TEMPLATE = '''
from jal import config as config_lib
import ml_collections


def get_config():
  base = config_lib.default()
  base.num_epochs = 1
  base.initial_size = 20
  base.query_size = 10
  base.num_rounds = 1
  fields = dict(base=base, datasets=['digits'], strategies='random,entropy',
                seeds=[0], query_sizes=[], epochs=[], budget=0,
                vmap_trials=True)
{body}
  return ml_collections.ConfigDict(fields)
'''


# --------------------------------------------------------------------------
# Work directory contents.

def read_records(workdir: str) -> list[dict] | None:
  """results.jsonl's records without timings; None if unreadable."""
  try:
    with open(os.path.join(workdir, 'results.jsonl')) as f:
      return [_untimed(json.loads(line)) for line in f if line.strip()]
  except (OSError, ValueError):
    return None


def _untimed(record: dict) -> dict:
  return {k: v for k, v in record.items() if not k.endswith('_seconds')}


def read_summary(workdir: str) -> dict | None:
  try:
    with open(os.path.join(workdir, 'summary.json')) as f:
      summary = json.load(f)
  except (OSError, ValueError):
    return None
  return {k: summary.get(k) for k in ('aubc', 'final_accuracy', 'num_labeled',
                                      'test_accuracy')}


def compare(workdir: str, reference: str) -> tuple[str, str]:
  """'handled' if records and summary match the reference's, else 'lost'."""
  got, want = read_records(workdir), read_records(reference)
  if got != want:
    n = 'unreadable' if got is None else f'{len(got)} records'
    return 'lost', f'results.jsonl differs from an uninterrupted run ({n}, ' \
                   f'expected {len(want)})'
  if read_summary(workdir) != read_summary(reference):
    return 'lost', 'summary.json differs from an uninterrupted run'
  return 'handled', f'{len(got)} records and summary match an uninterrupted run'


def judge_either(res: Res, names, check: Callable[[], tuple[str, str]]):
  """A clear refusal, or a run that `check` finds right."""
  if res.timed_out:
    return 'hang', f'no answer after {res.seconds:.0f} s'
  if res.rc != 0:
    return judge_refusal(res, names)
  return check()


# Checkpoint surgery with NumPy alone (the npz layout of jal.checkpoint).

def edit_checkpoint(path: str, edit: Callable[[dict], None]) -> None:
  import numpy as np  # pylint: disable=g-import-not-at-top
  with np.load(path) as data:
    arrays = {name: data[name] for name in data.files}
  edit(arrays)
  with open(path, 'wb') as f:
    np.savez(f, **arrays)


def _json_leaf(arrays, name):
  return json.loads(arrays[name].tobytes().decode())


def _set_json_leaf(arrays, name, value):
  import numpy as np  # pylint: disable=g-import-not-at-top
  arrays[name] = np.frombuffer(json.dumps(value).encode(), np.uint8)


def rewind(arrays: dict, rounds_kept: int) -> None:
  """Turns a finished 1-round run's checkpoint into the one after round 0."""
  arrays['.round'] = arrays['.round'] * 0 + rounds_kept
  _set_json_leaf(arrays, '__records__',
                 _json_leaf(arrays, '__records__')[:rounds_kept])


# --------------------------------------------------------------------------
# Case builders for scripts.

def refuse_run(cid, cls, what, names, *args, tiny=None, setup=None,
               config=None):
  """run.py with `args` must be refused naming one of `names`."""

  def judge(ctx):
    workdir = ctx.wd()
    extra = list(args)
    if setup is not None:
      extra += setup(ctx, workdir)
    return judge_refusal(ctx.run(workdir, *extra, tiny=tiny,
                                 config=config and ctx.config(config)), names)

  _add(Case(cid, cls, 'run', what, 'error', names, judge))


def claims(cid, what, names, *args, tiny=None, setup=None):
  """A refused config must leave the work directory unclaimed (class 5)."""

  def judge(ctx):
    workdir = ctx.wd()
    extra = list(args)
    if setup is not None:
      extra += setup(ctx, workdir)
    verdict, message = judge_refusal(ctx.run(workdir, *extra, tiny=tiny),
                                     names)
    if verdict != 'clear':
      return verdict, message
    again = ctx.run(workdir)
    if again.rc != 0:
      line = (meaningful_lines(again.stderr) or ['?'])[-1]
      return 'silent', f'the refused config claimed {workdir}: {line}'
    return 'clear', message

  _add(Case(cid, 5, 'run', what + ', then a good config in the same workdir',
            'error', names, judge))


def damaged(cid, cls, what, names, damage, rounds=1, expect='error',
            entry='run'):
  """A copy of a finished run, damaged, then run.py again on it."""

  def judge(ctx):
    workdir = ctx.copy_of(ctx.ref_run(rounds))
    damage(ctx, workdir)
    res = ctx.run(workdir, tiny=dict(num_rounds=rounds))
    if expect == 'error':
      return judge_refusal(res, names)
    return judge_either(res, names,
                        lambda: compare(workdir, ctx.ref_run(rounds)))

  _add(Case(cid, cls, entry, what, expect, names, judge))


def refuse_bench(cid, cls, what, names, *args, body=''):
  def judge(ctx):
    return judge_refusal(ctx.bench(ctx.wd(), *args, body=body), names)

  _add(Case(cid, cls, 'benchmark', what, 'error', names, judge))


def refuse_report(cid, what, names, make_args):
  def judge(ctx):
    return judge_refusal(ctx.script('report.py', make_args(ctx)), names)

  _add(Case(cid, 10, 'report', what, 'error', names, judge))


# --------------------------------------------------------------------------
# Class 1: lost records (kills and damaged records).

_KILLER = r'''
import os, runpy, signal, sys
target, mode, nth, script = sys.argv[1:5]
nth = int(nth)
count = [0]
def hook(real):
  def replace(src, dst, *args, **kwargs):
    if os.path.basename(os.fspath(dst)) != target:
      return real(src, dst, *args, **kwargs)
    count[0] += 1
    if mode == 'before' and count[0] == nth:
      os.kill(os.getpid(), signal.SIGKILL)
    result = real(src, dst, *args, **kwargs)
    if mode == 'after' and count[0] == nth:
      os.kill(os.getpid(), signal.SIGKILL)
    return result
  return replace
os.replace, os.rename = hook(os.replace), hook(os.rename)
sys.argv = [script] + sys.argv[5:]
runpy.run_path(script, run_name='__main__')
'''


def killed(cid, what, target, mode, nth, rounds=2):
  """SIGKILL around the nth atomic write of `target`, then a resume."""

  def judge(ctx):
    workdir = ctx.wd()
    fields = dict(TINY, num_rounds=rounds)
    flags = [f'--config={ctx.config()}', f'--workdir={workdir}'] + [
        f'--config.{k}={v}' for k, v in fields.items()]
    first = ctx.script('', ['-c', _KILLER, target, mode, str(nth),
                            os.path.join(ctx.repo, 'experiments', 'run.py'),
                            *flags])
    note = ('killed' if first.rc == -signal.SIGKILL else
            f'kill hook did not fire (exit {first.rc})')
    res = ctx.run(workdir, tiny=dict(num_rounds=rounds))
    if res.timed_out:
      return 'hang', 'resume did not finish'
    if res.rc != 0:
      return 'lost', f'{note}; resume failed: ' + (
          meaningful_lines(res.stderr) or ['?'])[-1]
    verdict, message = compare(workdir, ctx.ref_run(rounds))
    return verdict, f'{note}; {message}'

  _add(Case(cid, 1, 'run', what + ', then run.py again', 'runs', (), judge))


killed('c1_kill_after_last_ckpt', 'SIGKILL right after the last round\'s '
       'checkpoint.npz write (before results.jsonl)', 'checkpoint.npz',
       'after', 3)
killed('c1_kill_before_last_results', 'SIGKILL just before the last '
       'results.jsonl write', 'results.jsonl', 'before', 3)
killed('c1_kill_before_summary', 'SIGKILL just before summary.json is written',
       'summary.json', 'before', 1)
killed('c1_kill_after_first_ckpt', 'SIGKILL right after round 0\'s checkpoint',
       'checkpoint.npz', 'after', 1)
killed('c1_kill_before_first_ckpt', 'SIGKILL just before round 0\'s checkpoint',
       'checkpoint.npz', 'before', 1)
killed('c1_kill_after_config', 'SIGKILL right after config.json is written',
       'config.json', 'after', 1)


def _timed_kill(cid, what, when):
  def judge(ctx):
    workdir = ctx.wd()
    proc = subprocess.Popen(
        [sys.executable, os.path.join(ctx.repo, 'experiments', 'run.py'),
         f'--config={ctx.config()}', f'--workdir={workdir}',
         *[f'--config.{k}={v}' for k, v in dict(TINY, num_rounds=2).items()]],
        cwd=ctx.tmp('cwd'), env=ctx.env, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
      when(proc)
    finally:
      if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
      proc.communicate()
    res = ctx.run(workdir, tiny=dict(num_rounds=2))
    if res.timed_out:
      return 'hang', 'resume did not finish'
    if res.rc != 0:
      return 'lost', 'resume failed: ' + (
          meaningful_lines(res.stderr) or ['?'])[-1]
    return compare(workdir, ctx.ref_run(2))

  _add(Case(cid, 1, 'run', what + ', then run.py again', 'runs', (), judge))


def _after_line(prefix):
  def when(proc):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
      line = proc.stdout.readline()
      if not line or line.startswith(prefix):
        return
  return when


_timed_kill('c1_sigkill_after_round0', 'SIGKILL once "round 0" is printed',
            _after_line('round   0'))
_timed_kill('c1_sigkill_after_round1', 'SIGKILL once "round 1" is printed',
            _after_line('round   1'))
_timed_kill('c1_sigkill_at_2s', 'SIGKILL 2 s after start',
            lambda proc: time.sleep(2.0))
_timed_kill('c1_sigkill_at_4s', 'SIGKILL 4 s after start',
            lambda proc: time.sleep(4.0))


def _empty_results(ctx, workdir):
  open(os.path.join(workdir, 'results.jsonl'), 'w').close()


def _truncate(name, keep=0.5):
  def damage(ctx, workdir):
    path = os.path.join(workdir, name)
    with open(path, 'rb') as f:
      data = f.read()
    with open(path, 'wb') as f:
      f.write(data[:int(len(data) * keep)])
  return damage


def _remove(name):
  def damage(ctx, workdir):
    os.remove(os.path.join(workdir, name))
  return damage


def _garbage(name, data=b'\x00\xff garbage \x13' * 7):
  def damage(ctx, workdir):
    with open(os.path.join(workdir, name), 'wb') as f:
      f.write(data)
  return damage


damaged('c1_results_emptied', 1, 'finished run, results.jsonl emptied, run '
        'again', ('results.jsonl',), _empty_results, expect='either')
damaged('c1_results_truncated', 1, 'finished run, results.jsonl cut mid-line, '
        'run again', ('results.jsonl',), _truncate('results.jsonl', 0.7),
        expect='either')
damaged('c1_results_deleted', 1, 'finished run, results.jsonl deleted, run '
        'again', ('results.jsonl',), _remove('results.jsonl'), expect='either')
damaged('c1_results_garbage', 1, 'finished run, results.jsonl random bytes, '
        'run again', ('results.jsonl',), _garbage('results.jsonl'),
        expect='either')
damaged('c1_summary_deleted', 1, 'finished run, summary.json deleted, run '
        'again', ('summary.json',), _remove('summary.json'), expect='either')
damaged('c1_summary_garbage', 1, 'finished run, summary.json random bytes, '
        'run again', ('summary.json',), _garbage('summary.json'),
        expect='either')


def _bench_damaged(cid, what, damage):
  def judge(ctx):
    ref = ctx.ref_bench()
    workdir = ctx.copy_of(ref)
    cell = os.path.join(workdir, 'digits', 'entropy', 'seed0')
    damage(ctx, cell)
    res = ctx.bench(workdir)

    def check():
      return compare(cell, os.path.join(ref, 'digits', 'entropy', 'seed0'))

    return judge_either(res, ('results.jsonl', 'summary.json'), check)

  _add(Case(cid, 1, 'benchmark', what, 'either',
            ('results.jsonl', 'summary.json'), judge))


_bench_damaged('c1_bench_results_emptied', 'finished benchmark, a cell\'s '
               'results.jsonl emptied, benchmark.py again', _empty_results)
_bench_damaged('c1_bench_results_truncated', 'finished benchmark, a cell\'s '
               'results.jsonl cut, benchmark.py again',
               _truncate('results.jsonl', 0.5))
_bench_damaged('c1_bench_summary_garbage', 'finished benchmark, a cell\'s '
               'summary.json random bytes, benchmark.py again',
               _garbage('summary.json'))


def _bench_kill(ctx):
  workdir = ctx.wd()
  proc = subprocess.Popen(
      [sys.executable, os.path.join(ctx.repo, 'experiments', 'benchmark.py'),
       f'--config={ctx.bench_config()}', f'--workdir={workdir}',
       '--compilation_cache=none'],
      cwd=ctx.tmp('cwd'), env=ctx.env, stdout=subprocess.PIPE,
      stderr=subprocess.DEVNULL, text=True, start_new_session=True)
  try:
    _after_line('[1/2 cells]')(proc)
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
  res = ctx.bench(workdir)
  if res.rc != 0:
    return 'lost', 'resume failed: ' + (meaningful_lines(res.stderr) or
                                         ['?'])[-1]
  ref = ctx.ref_bench()
  for strategy in ('random', 'entropy'):
    verdict, message = compare(os.path.join(workdir, 'digits', strategy,
                                            'seed0'),
                               os.path.join(ref, 'digits', strategy, 'seed0'))
    if verdict != 'handled':
      return verdict, f'{strategy}: {message}'
  return 'handled', 'both cells match an uninterrupted benchmark'


_add(Case('c1_bench_sigkill', 1, 'benchmark', 'SIGKILL after the first '
          'finished cell, benchmark.py again', 'runs', (), _bench_kill))


# --------------------------------------------------------------------------
# Class 2: stale results reused by benchmark.py.

def stale(cid, what, flag, field, check_field, value):
  """Re-run a finished benchmark with a changed base field."""

  def judge(ctx):
    workdir = ctx.copy_of(ctx.ref_bench())
    res = ctx.bench(workdir, flag)

    def check():
      for strategy in ('random', 'entropy'):
        path = os.path.join(workdir, 'digits', strategy, 'seed0',
                            'summary.json')
        try:
          with open(path) as f:
            config = json.load(f)['config']
        except (OSError, ValueError, KeyError):
          return 'lost', f'{path} unreadable after the re-run'
        for part in check_field.split('.'):
          config = config.get(part) if isinstance(config, dict) else None
        if config != value:
          return 'silent', (f'exit 0, cell {strategy}/seed0 kept its old '
                            f'results ({check_field}={config!r}, asked '
                            f'{value!r})')
      return 'handled', f'cells re-run with {check_field}={value!r}'

    return judge_either(res, (field,), check)

  _add(Case(cid, 2, 'benchmark', what, 'either', (field,), judge))


stale('c2_num_epochs', 'finished benchmark re-run with base.num_epochs=2',
      '--config.base.num_epochs=2', 'num_epochs', 'num_epochs', 2)
stale('c2_learning_rate', 'finished benchmark re-run with base.learning_rate'
      '=0.01', '--config.base.learning_rate=0.01', 'learning_rate',
      'learning_rate', 0.01)
stale('c2_dropout', 'finished benchmark re-run with base.dropout_rate=0.3',
      '--config.base.dropout_rate=0.3', 'dropout_rate', 'dropout_rate', 0.3)
stale('c2_initial_size', 'finished benchmark re-run with base.initial_size=30',
      '--config.base.initial_size=30', 'initial_size', 'initial_size', 30)
stale('c2_query_size', 'finished benchmark re-run with base.query_size=5',
      '--config.base.query_size=5', 'query_size', 'query_size', 5)
stale('c2_batch_size', 'finished benchmark re-run with base.batch_size=16',
      '--config.base.batch_size=16', 'batch_size', 'batch_size', 16)
stale('c2_optimizer', 'finished benchmark re-run with base.optimizer=sgd',
      '--config.base.optimizer=sgd', 'optimizer', 'optimizer', 'sgd')
stale('c2_weight_decay', 'finished benchmark re-run with base.weight_decay'
      '=0.001', '--config.base.weight_decay=0.001', 'weight_decay',
      'weight_decay', 0.001)


def _bench_added(cid, what, flag, cell):
  def judge(ctx):
    workdir = ctx.copy_of(ctx.ref_bench())
    res = ctx.bench(workdir, flag)

    def check():
      if read_summary(os.path.join(workdir, *cell)) is None:
        return 'silent', f'exit 0 but no finished cell {"/".join(cell)}'
      ref = ctx.ref_bench()
      verdict, message = compare(os.path.join(workdir, 'digits', 'random',
                                              'seed0'),
                                 os.path.join(ref, 'digits', 'random', 'seed0'))
      if verdict != 'handled':
        return verdict, 'old cell changed: ' + message
      return 'handled', f'new cell {"/".join(cell)} ran, old ones kept'

    return judge_either(res, (), check)

  _add(Case(cid, 2, 'benchmark', what, 'runs', (), judge))


_bench_added('c2_add_strategy', 'finished benchmark re-run with one more '
             'strategy', '--config.strategies=random,entropy,margin',
             ('digits', 'margin', 'seed0'))
_bench_added('c2_base_seed_ignored', 'finished benchmark re-run with '
             'base.seed=5 (cells set their own seed)', '--config.base.seed=5',
             ('digits', 'entropy', 'seed0'))


# --------------------------------------------------------------------------
# Class 3: broken training (optimizer fields, divergence).

_NONFINITE = ('nan', 'non-finite', 'infinite', 'diverge')
for _cid, _args, _names in [
    ('c3_weight_decay_nan', ['--config.weight_decay=nan'], ('weight_decay',)),
    ('c3_weight_decay_inf', ['--config.weight_decay=inf'], ('weight_decay',)),
    ('c3_weight_decay_neg', ['--config.weight_decay=-1.0'], ('weight_decay',)),
    ('c3_momentum_neg', ['--config.optimizer=sgd', '--config.momentum=-0.5'],
     ('momentum',)),
    ('c3_momentum_nan', ['--config.optimizer=sgd', '--config.momentum=nan'],
     ('momentum',)),
    ('c3_momentum_2', ['--config.optimizer=sgd', '--config.momentum=2.0'],
     ('momentum',)),
    ('c3_lr_1e8', ['--config.learning_rate=1e8'],
     ('learning_rate',) + _NONFINITE),
    ('c3_lr_1e8_margin', ['--config.learning_rate=1e8',
                          '--config.strategy=margin'],
     ('learning_rate',) + _NONFINITE),
    ('c3_lr_1e8_bald', ['--config.learning_rate=1e8', '--config.strategy=bald'],
     ('learning_rate',) + _NONFINITE),
    ('c3_sgd_lr_1e6', ['--config.optimizer=sgd', '--config.learning_rate=1e6'],
     ('learning_rate',) + _NONFINITE),
    ('c3_lr_nan', ['--config.learning_rate=nan'], ('learning_rate',)),
    ('c3_lr_inf', ['--config.learning_rate=inf'], ('learning_rate',)),
    ('c3_lr_neg', ['--config.learning_rate=-0.1'], ('learning_rate',)),
    ('c3_lr_zero', ['--config.learning_rate=0'], ('learning_rate',)),
    ('c3_optimizer_adamw', ['--config.optimizer=adamw'], ('optimizer',)),
    ('c3_optimizer_empty', ['--config.optimizer='], ('optimizer',)),
    ('c3_batch_size_0', ['--config.batch_size=0'], ('batch_size',)),
    ('c3_batch_size_neg', ['--config.batch_size=-8'], ('batch_size',)),
    ('c3_epochs_0', ['--config.num_epochs=0'], ('num_epochs',)),
    ('c3_dropout_1', ['--config.dropout_rate=1.0'], ('dropout_rate',)),
    ('c3_dropout_neg', ['--config.dropout_rate=-0.1'], ('dropout_rate',)),
    ('c3_dropout_nan', ['--config.dropout_rate=nan'], ('dropout_rate',)),
    ('c3_posterior_samples_0', ['--config.strategy=bald',
                                '--config.posterior_samples=0'],
     ('posterior_samples',)),
    ('c3_eval_chunk_0', ['--config.eval_chunk=0'], ('eval_chunk',)),
    ('c3_laplace_precision_nan', ['--config.strategy=bald',
                                  '--config.posterior=laplace',
                                  '--config.laplace_prior_precision=nan'],
     ('laplace_prior_precision',)),
    ('c3_ensemble_size_0', ['--config.strategy=bald',
                            '--config.posterior=ensemble',
                            '--config.ensemble_size=0'], ('ensemble_size',)),
    ('c3_train_loop_bad', ['--config.train_loop=gpu'], ('train_loop',)),
]:
  refuse_run(_cid, 3, 'run.py ' + ' '.join(_args), _names, *_args)


# --------------------------------------------------------------------------
# Class 4: strategy hyperparameter values.

for _strategy, _field, _value, _extra in [
    ('power_bald', 'beta', '-2.0', []),
    ('power_bald', 'beta', 'nan', []),
    ('power_bald', 'beta', 'inf', []),
    ('power_bald', 'beta', 'abc', []),
    ('softmax_entropy', 'beta', '-1.0', []),
    ('softrank_bald', 'beta', 'nan', []),
    ('power_entropy', 'beta', '-inf', []),
    ('epig', 'num_targets', '0', []),
    ('epig', 'num_targets', '-5', []),
    ('epig', 'chunk_size', '0', []),
    ('probcover', 'num_neighbours', '0', []),
    ('probcover', 'purity', '1.5', []),
    ('probcover', 'num_classes', '0', []),
    ('batchbald', 'num_samples', '0', []),
    ('batchbald', 'num_samples', '-1', []),
    ('batchbald', 'chunk_elements', '0', []),
    ('dbal', 'beta', '0', []),
    ('dbal', 'num_iters', '-1', []),
    ('typiclust', 'max_clusters', '0', []),
    ('typiclust', 'num_neighbours', '0', []),
    ('typiclust', 'min_cluster_size', '-1', []),
    ('kcenter', 'pca_dim', '-1', []),
    ('kcenter', 'pca_dim', '100000', []),
    ('kcenter', 'chunk_size', '0', []),
    ('kmeans', 'num_iters', '-1', []),
    ('cluster_margin', 'num_clusters', '0', []),
    ('cluster_margin', 'margin_multiple', '0', []),
    ('cluster_margin', 'hac_sample', '0', []),
]:
  refuse_run(f'c4_{_strategy}_{_field}_'
             f'{_value.replace("-", "neg").replace(".", "p")}', 4,
             f'run.py --config.strategy={_strategy} '
             f'--config.hparams.{_strategy}.{_field}={_value}', (_field,),
             f'--config.strategy={_strategy}',
             f'--config.hparams.{_strategy}.{_field}={_value}', *_extra)

def _hparam_file(strategy, field, value):
  """A config file setting one hyperparameter (None defaults cannot be set
  from the command line)."""
  def setup(ctx, workdir):
    path = os.path.join(ctx.tmp('cfg'), 'hparam_config.py')
    with open(path, 'w') as f:
      f.write('from jal import config as config_lib\n\n\ndef get_config():\n'
              '  config = config_lib.default()\n'
              f'  config.strategy = {strategy!r}\n'
              f'  config.hparams.{strategy}.{field} = {value}\n'
              '  return config\n')
    return [f'--config={path}']
  return setup


for _value, _tag in (('-1.0', 'neg1'), ("float('nan')", 'nan'),
                     ("'wide'", 'string')):
  refuse_run(f'c4_probcover_radius_{_tag}', 4, 'a config file setting '
             f'hparams.probcover.radius = {_value}', ('radius',),
             setup=_hparam_file('probcover', 'radius', _value))
refuse_run('c4_cluster_margin_threshold_neg', 4, 'a config file setting '
           'hparams.cluster_margin.distance_threshold = -1.0',
           ('distance_threshold',),
           setup=_hparam_file('cluster_margin', 'distance_threshold', '-1.0'))
refuse_run('c4_bald_dropout_0', 4, 'run.py --config.strategy=bald '
           '--config.dropout_rate=0 (MC dropout without dropout)',
           ('dropout_rate',), '--config.strategy=bald',
           '--config.dropout_rate=0.0')
refuse_run('c4_batchbald_dropout_0', 4, 'run.py --config.strategy=batchbald '
           '--config.dropout_rate=0', ('dropout_rate',),
           '--config.strategy=batchbald', '--config.dropout_rate=0.0',
           '--config.hparams.batchbald.num_samples=100')
refuse_run('c4_unknown_hparam', 4, 'run.py --config.hparams.power_bald.alpha=1 '
           '(a hyperparameter power_bald does not take)', ('alpha',),
           '--config.strategy=power_bald', '--config.hparams.power_bald.alpha=1')
refuse_run('c4_badge_bias_string', 4, 'run.py --config.strategy=badge '
           '--config.hparams.badge.include_bias=maybe', ('include_bias',),
           '--config.strategy=badge', '--config.hparams.badge.include_bias=maybe')


# --------------------------------------------------------------------------
# Class 5: a rejected config claims the work directory; refusals name fields.

claims('c5_budget', 'run.py --config.num_rounds=1000 (budget > pool)',
       ('num_rounds', 'budget', 'pool'), '--config.num_rounds=1000')
claims('c5_initial_per_class', 'run.py --config.initial_per_class=3 '
       '(initial_size 20 != 3 * 10)', ('initial_per_class',),
       '--config.initial_per_class=3')
claims('c5_seed_neg', 'run.py --config.seed=-1', ('seed',), '--config.seed=-1')
claims('c5_optimizer', 'run.py --config.optimizer=adamw', ('optimizer',),
       '--config.optimizer=adamw')
claims('c5_model', 'run.py --config.model=transformer', ('model',),
       '--config.model=transformer')
claims('c5_strategy', 'run.py --config.strategy=foo', ('strategy',),
       '--config.strategy=foo')
claims('c5_posterior', 'run.py --config.posterior=foo', ('posterior',),
       '--config.posterior=foo')
claims('c5_pool_size', 'run.py --config.pool_size=5', ('pool_size',),
       '--config.pool_size=5')
claims('c5_dataset_unknown', 'run.py --config.dataset=imagenet1k',
       ('imagenet1k',), '--config.dataset=imagenet1k')
claims('c5_mnist_no_data_dir', 'run.py --config.dataset=mnist, no data_dir '
       'and no JAL_DATA_DIR', ('JAL_DATA_DIR', 'data_dir'),
       '--config.dataset=mnist')
claims('c5_mnist_empty_dir', 'run.py --config.dataset=mnist '
       '--config.data_dir=<empty dir>', ('train-images', 'mnist'),
       '--config.dataset=mnist',
       setup=lambda ctx, w: [f'--config.data_dir={ctx.tmp("empty")}'])
claims('c5_weight_decay', 'run.py --config.weight_decay=nan',
       ('weight_decay',), '--config.weight_decay=nan')
claims('c5_hparam', 'run.py --config.strategy=power_bald '
       '--config.hparams.power_bald.beta=-2', ('beta',),
       '--config.strategy=power_bald', '--config.hparams.power_bald.beta=-2.0')


def _reuse(cid, what, names, *args):
  def judge(ctx):
    workdir = ctx.copy_of(ctx.ref_run(1))
    return judge_refusal(ctx.run(workdir, *args), names)

  _add(Case(cid, 5, 'run', what, 'error', names, judge))


_reuse('c5_reuse_num_epochs', 'finished workdir reused with num_epochs=2',
       ('num_epochs',), '--config.num_epochs=2')
_reuse('c5_reuse_strategy', 'finished workdir reused with strategy=margin',
       ('strategy',), '--config.strategy=margin')
_reuse('c5_reuse_hparam', 'finished workdir reused with hparams.power_bald.beta'
       '=2', ('beta',), '--config.hparams.power_bald.beta=2.0')
_reuse('c5_reuse_two_fields', 'finished workdir reused with seed=3 and '
       'query_size=5', ('seed',), '--config.seed=3', '--config.query_size=5')


def _bench_claim(ctx):
  workdir = ctx.wd()
  verdict, message = judge_refusal(ctx.bench(workdir,
                                             '--config.base.num_rounds=1000'),
                                   ('num_rounds', 'budget', 'pool'))
  if verdict != 'clear':
    return verdict, message
  res = ctx.bench(workdir)
  if res.rc != 0:
    return 'silent', 'the refused grid claimed its workdir: ' + (
        meaningful_lines(res.stderr) or ['?'])[-1]
  return verdict, message


_add(Case('c5_bench_budget', 5, 'benchmark', 'benchmark.py with base.num_rounds'
          '=1000, then a good grid in the same workdir', 'error',
          ('num_rounds', 'budget', 'pool'), _bench_claim))


# --------------------------------------------------------------------------
# Class 6: damaged state.

def _ckpt(edit):
  def damage(ctx, workdir):
    edit_checkpoint(os.path.join(workdir, 'checkpoint.npz'), edit)
    os.remove(os.path.join(workdir, 'summary.json'))
  return damage


def _edit_array(name, fn):
  def edit(arrays):
    arrays[name] = fn(arrays[name])
  return edit


def _np():
  import numpy as np  # pylint: disable=g-import-not-at-top
  return np


def _fifo(ctx, workdir):
  path = os.path.join(workdir, 'checkpoint.npz')
  os.remove(path)
  os.mkfifo(path)


def _dir_in_place(name):
  def damage(ctx, workdir):
    path = os.path.join(workdir, name)
    os.remove(path)
    os.makedirs(path)
  return damage


def _dangling(ctx, workdir):
  path = os.path.join(workdir, 'checkpoint.npz')
  os.remove(path)
  os.symlink(os.path.join(workdir, 'nowhere.npz'), path)


def _foreign(ctx, workdir):
  other = ctx.wd('other')
  res = ctx.run(other, '--config.learning_rate=0.002')
  if res.rc != 0:
    raise Verdict('skipped', 'could not make the other experiment')
  shutil.copy(os.path.join(other, 'checkpoint.npz'),
              os.path.join(workdir, 'checkpoint.npz'))
  os.remove(os.path.join(workdir, 'summary.json'))


def _foreign_config(ctx, workdir):
  """The other experiment's checkpoint and config.json: a forged match."""
  other = ctx.wd('other')
  res = ctx.run(other, '--config.seed=1')
  if res.rc != 0:
    raise Verdict('skipped', 'could not make the other experiment')
  shutil.copy(os.path.join(other, 'checkpoint.npz'),
              os.path.join(workdir, 'checkpoint.npz'))


_CK = ('checkpoint',)
damaged('c6_ckpt_truncated', 6, 'checkpoint.npz cut in half, run again', _CK,
        _truncate('checkpoint.npz'))
damaged('c6_ckpt_empty', 6, 'checkpoint.npz emptied, run again', _CK,
        _truncate('checkpoint.npz', 0))
damaged('c6_ckpt_garbage', 6, 'checkpoint.npz random bytes, run again', _CK,
        _garbage('checkpoint.npz'))
damaged('c6_ckpt_dir', 6, 'a directory named checkpoint.npz, run again', _CK,
        _dir_in_place('checkpoint.npz'))
damaged('c6_ckpt_fifo', 6, 'a FIFO named checkpoint.npz, run again', _CK,
        _fifo)
damaged('c6_ckpt_dangling', 6, 'checkpoint.npz a dangling symlink', _CK,
        _dangling)
damaged('c6_config_truncated', 6, 'config.json cut in half, run again',
        ('config.json',), _truncate('config.json'))
damaged('c6_config_empty', 6, 'config.json emptied, run again',
        ('config.json',), _truncate('config.json', 0))
damaged('c6_config_dir', 6, 'a directory named config.json, run again',
        ('config.json',), _dir_in_place('config.json'))
damaged('c6_config_list', 6, 'config.json holds a JSON list, run again',
        ('config.json',), _garbage('config.json', b'[1, 2, 3]\n'))
damaged('c6_key_dtype', 6, 'checkpoint PRNG-key leaf stored as float32', _CK,
        _ckpt(_edit_array('.key', lambda a: a.astype('float32'))))
damaged('c6_key_shape', 6, 'checkpoint PRNG-key leaf of 3 words', _CK,
        _ckpt(_edit_array('.key', lambda a: _np().zeros(3, a.dtype))))
damaged('c6_foreign_ckpt', 6, 'checkpoint.npz copied from another experiment '
        'of the same shapes (learning_rate differs)', _CK, _foreign)
damaged('c6_foreign_ckpt_config', 6, 'checkpoint.npz of another seed, '
        'same shapes, summary kept', _CK, _foreign_config)
damaged('c6_round_past_end', 6, 'checkpoint round counter set to 99 '
        '(num_rounds=1)', ('round',), _ckpt(_edit_array(
            '.round', lambda a: a * 0 + 99)))
damaged('c6_round_negative', 6, 'checkpoint round counter set to -1',
        ('round',), _ckpt(_edit_array('.round', lambda a: a * 0 - 1)))


def _unlabeled_masked(arrays):
  rewind(arrays, 1)
  mask, labels = arrays['.labeled_mask'].copy(), arrays['.labels']
  mask[_np().flatnonzero(labels < 0)[:5]] = True
  arrays['.labeled_mask'] = mask


def _bad_label(arrays):
  rewind(arrays, 1)
  labels = arrays['.labels'].copy()
  labels[_np().flatnonzero(labels >= 0)[0]] = 99
  arrays['.labels'] = labels


def _records_short(arrays):
  _set_json_leaf(arrays, '__records__', _json_leaf(arrays, '__records__')[:1])


def _records_not_list(arrays):
  _set_json_leaf(arrays, '__records__', {'round': 0})


def _records_garbage(arrays):
  arrays['__records__'] = _np().frombuffer(b'\xff\xfe{not json', _np().uint8)


damaged('c6_mask_label_minus1', 6, 'checkpoint mask marks 5 points whose '
        'label is -1 (resumed mid-run)', ('label', 'mask'),
        _ckpt(_unlabeled_masked))
damaged('c6_label_99', 6, 'checkpoint holds label 99 of 10 classes (resumed '
        'mid-run)', ('label',), _ckpt(_bad_label))
damaged('c6_records_short', 6, 'checkpoint holds 1 record after 2 rounds',
        ('record', 'round'), _ckpt(_records_short))
damaged('c6_records_not_list', 6, 'checkpoint records are a JSON object', _CK,
        _ckpt(_records_not_list))
damaged('c6_records_garbage', 6, 'checkpoint records are not JSON', _CK,
        _ckpt(_records_garbage))
damaged('c6_results_dir', 6, 'a directory named results.jsonl, run again',
        ('results.jsonl',), _dir_in_place('results.jsonl'), expect='either')


def _header(arrays):
  _set_json_leaf(arrays, '__header__', {'format': 1, 'fingerprint': ''})


damaged('c6_ckpt_old_format', 6, 'checkpoint header of format 1', _CK,
        _ckpt(_header))
damaged('c6_ckpt_missing_leaf', 6, 'checkpoint without its .labels array',
        _CK, _ckpt(lambda arrays: arrays.pop('.labels')))
damaged('c6_rewound_resume', 6, 'checkpoint rewound to round 0 (a genuine '
        'mid-run state), run again', (), _ckpt(lambda a: rewind(a, 1)),
        expect='either')


# --------------------------------------------------------------------------
# Class 7 (files): IDX damage in a copy of MNIST; the API cases follow below.

def _idx(cid, what, names, damage, expect='error'):
  def judge(ctx):
    root = ctx.mnist()
    damage(os.path.join(root, 'mnist'))
    res = ctx.run(ctx.wd(), '--config.dataset=mnist',
                  f'--config.data_dir={root}', '--config.pool_size=500')
    if expect == 'error':
      return judge_refusal(res, names)
    return judge_either(res, names, lambda: (
        'handled', _last_stdout(res)))

  _add(Case(cid, 7, 'run', what, expect, names, judge))


def _rewrite_gz(name, fn):
  def damage(directory):
    path = os.path.join(directory, name + '.gz')
    with gzip.open(path, 'rb') as f:
      data = f.read()
    with gzip.open(path, 'wb', compresslevel=1) as f:
      f.write(fn(data))
  return damage


def _cut_file(name, keep):
  def damage(directory):
    path = os.path.join(directory, name)
    with open(path, 'rb') as f:
      data = f.read()
    with open(path, 'wb') as f:
      f.write(data[:keep if keep >= 1 else int(len(data) * keep)])
  return damage


def _gunzip_all(directory):
  for name in os.listdir(directory):
    path = os.path.join(directory, name)
    with gzip.open(path, 'rb') as f, open(path[:-3], 'wb') as g:
      shutil.copyfileobj(f, g)
    os.remove(path)


def _label_11(data):
  data = bytearray(data)
  data[8 + 3] = 11
  return bytes(data)


_TRI, _TRL = 'train-images-idx3-ubyte', 'train-labels-idx1-ubyte'
_TEI, _TEL = 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'
_idx('c7_idx_gz_truncated', 'train-images .gz cut in half', (_TRI,),
     _cut_file(_TRI + '.gz', 0.5))
_idx('c7_idx_gz_empty', 't10k-labels .gz empty', (_TEL,),
     _cut_file(_TEL + '.gz', 0))
_idx('c7_idx_not_gzip', 'train-labels .gz holds plain text', (_TRL,),
     lambda d: open(os.path.join(d, _TRL + '.gz'), 'w').write('hello\n'))
_idx('c7_idx_bad_magic', 'train-labels with an images magic number', (_TRL,),
     _rewrite_gz(_TRL, lambda b: b'\x00\x00\x08\x03' + b[4:]))
_idx('c7_idx_payload_short', 't10k-images missing its last 1000 bytes',
     (_TEI,), _rewrite_gz(_TEI, lambda b: b[:-1000]))
_idx('c7_idx_payload_long', 't10k-images with 10 extra bytes', (_TEI,),
     _rewrite_gz(_TEI, lambda b: b + b'\x00' * 10))
_idx('c7_idx_count_mismatch', 'train-labels of 100 labels for 60000 images',
     (_TRL, _TRI), _rewrite_gz(_TRL, lambda b: b[:4] + (100).to_bytes(4, 'big')
                               + b[8:108]))
_idx('c7_idx_label_11', 'train-labels holding label 11', (_TRL,),
     _rewrite_gz(_TRL, _label_11))
_idx('c7_idx_missing_file', 't10k-labels deleted', (_TEL, 't10k'),
     lambda d: os.remove(os.path.join(d, _TEL + '.gz')))
_idx('c7_idx_header_only', 'train-images .gz holding only a 6-byte header',
     (_TRI,), _rewrite_gz(_TRI, lambda b: b[:6]))
_idx('c7_idx_dtype_float', 'train-images with data type 0x0d (float)',
     (_TRI,), _rewrite_gz(_TRI, lambda b: b[:2] + b'\x0d' + b[3:]))
_idx('c7_idx_raw_files', 'the four MNIST files un-gzipped (valid)', (),
     _gunzip_all, expect='runs')
_idx('c7_idx_raw_truncated', 'raw train-images cut to 1000 bytes', (_TRI,),
     lambda d: (_gunzip_all(d), _cut_file(_TRI, 1000)(d)))


# --------------------------------------------------------------------------
# Class 9: grid mistakes.

refuse_bench('c9_empty_strategy_list', 9, 'bench.strategies = []',
             ('strateg',), body="fields['strategies'] = []")
refuse_bench('c9_empty_strategy_string', 9, "--config.strategies=''",
             ('strateg',), '--config.strategies=')
refuse_bench('c9_strategies_commas', 9, "--config.strategies=','",
             ('strateg',), '--config.strategies=,')
refuse_bench('c9_unknown_strategy', 9, '--config.strategies=random,foo',
             ('foo',), '--config.strategies=random,foo')
def _datasets_string(ctx):
  """A string names one dataset (it was split into letters)."""
  workdir = ctx.wd()
  res = ctx.bench(workdir, body="fields['datasets'] = 'digits'")
  if res.rc != 0:
    return judge_refusal(res, ('datasets',))
  found = sorted(d for d in os.listdir(workdir)
                 if os.path.isdir(os.path.join(workdir, d)) and d != 'jax_cache')
  if found == ['digits']:
    return 'handled', "ran the one dataset 'digits'"
  return 'silent', f'exit 0 with dataset directories {found}'


_add(Case('c9_datasets_string', 9, 'benchmark',
          "bench.datasets = 'digits' (a string)", 'runs', ('datasets',),
          _datasets_string))
refuse_bench('c9_datasets_empty', 9, 'bench.datasets = []', ('dataset',),
             body="fields['datasets'] = []")
refuse_bench('c9_datasets_unknown', 9, "bench.datasets = ['digitz']",
             ('digitz',), body="fields['datasets'] = ['digitz']")
refuse_bench('c9_seeds_empty', 9, 'bench.seeds = []', ('seed',),
             body="fields['seeds'] = []")
refuse_bench('c9_seeds_duplicate', 9, 'bench.seeds = [0, 0]', ('seed',),
             body="fields['seeds'] = [0, 0]")
refuse_bench('c9_seeds_negative', 9, 'bench.seeds = [-1]', ('seed',),
             body="fields['seeds'] = [-1]")
refuse_bench('c9_seeds_string', 9, "bench.seeds = ['a']", ('seed',),
             body="fields['seeds'] = ['a']")
refuse_bench('c9_budget_below_initial', 9, 'bench.budget = 10 < '
             'initial_size 20', ('budget',), body="fields['budget'] = 10")
refuse_bench('c9_budget_over_pool', 9, 'bench.budget = 100000',
             ('budget', 'pool'), body="fields['budget'] = 100000")
refuse_bench('c9_query_sizes_zero', 9, 'bench.query_sizes = [0]',
             ('query_size',), body="fields['query_sizes'] = [0]")
refuse_bench('c9_epochs_negative', 9, 'bench.epochs = [-1]',
             ('epoch',), body="fields['epochs'] = [-1]")
refuse_bench('c9_query_sizes_dup', 9, 'bench.query_sizes = [10, 10]',
             ('query_size',), body="fields['query_sizes'] = [10, 10]")
refuse_bench('c9_cli_seeds_list', 9, '--config.seeds=0,1 (a list field)',
             ('seeds',), '--config.seeds=0,1')
refuse_bench('c9_cli_datasets_list', 9, '--config.datasets=digits (a list '
             'field)', ('datasets',), '--config.datasets=digits')
refuse_bench('c9_unknown_field', 9, 'bench.strategy = "entropy" (a typo of '
             'strategies)', ('strategy',), body="fields['strategy'] = 'entropy'")
refuse_bench('c9_base_bad_field', 9, '--config.base.num_epochs=0',
             ('num_epochs',), '--config.base.num_epochs=0')


# --------------------------------------------------------------------------
# Class 10: ordinary problems.

def _file_workdir(ctx, workdir):
  os.makedirs(os.path.dirname(workdir), exist_ok=True)
  with open(workdir, 'w') as f:
    f.write('a file\n')
  return []


refuse_run('c10_workdir_is_file', 10, '--workdir=<a regular file>',
           ('work',), setup=_file_workdir)


def _workdir_under_file(ctx, workdir):
  _file_workdir(ctx, workdir)
  return [f'--workdir={workdir}/sub']


refuse_run('c10_workdir_under_file', 10, '--workdir=<file>/sub', ('work',),
           setup=_workdir_under_file)
refuse_run('c10_workdir_empty', 10, '--workdir=', ('workdir',),
           setup=lambda ctx, w: ['--workdir='])
refuse_run('c10_config_typo', 10, '--config.num_epoch=1 (typo)',
           ('num_epoch',), '--config.num_epoch=1')
refuse_run('c10_hparams_typo', 10, '--config.hparams.power_bald.bta=1',
           ('bta',), '--config.hparams.power_bald.bta=1.0')
refuse_run('c10_hparams_unknown_strategy', 10, '--config.hparams.foo.beta=1',
           ('foo',), '--config.hparams.foo.beta=1.0')
refuse_run('c10_int_field_float', 10, '--config.num_epochs=1.5',
           ('num_epochs',), '--config.num_epochs=1.5')
refuse_run('c10_int_field_text', 10, '--config.query_size=ten',
           ('query_size',), '--config.query_size=ten')
refuse_run('c10_bool_field_text', 10, '--config.augment=perhaps',
           ('augment',), '--config.augment=perhaps')
refuse_run('c10_unknown_strategy', 10, '--config.strategy=entropyy',
           ('entropyy',), '--config.strategy=entropyy')
refuse_run('c10_unknown_model', 10, '--config.model=resnet9000',
           ('resnet9000',), '--config.model=resnet9000')
refuse_run('c10_unknown_dataset', 10, '--config.dataset=digitz',
           ('digitz',), '--config.dataset=digitz')
refuse_run('c10_mnist_data_dir_missing', 10, '--config.dataset=mnist '
           '--config.data_dir=/nonexistent/dir', ('/nonexistent/dir', 'mnist'),
           '--config.dataset=mnist', '--config.data_dir=/nonexistent/dir')
refuse_run('c10_mnist_data_dir_file', 10, '--config.dataset=mnist '
           '--config.data_dir=<a file>', ('mnist', 'data_dir'),
           '--config.dataset=mnist',
           setup=lambda ctx, w: [f'--config.data_dir={os.path.abspath(__file__)}'])
refuse_run('c10_missing_config', 10, '--config=/nonexistent/config.py',
           ('config.py',), setup=lambda ctx, w: [
               '--config=/nonexistent/config.py'])


def _config_file(text):
  def setup(ctx, workdir):
    path = os.path.join(ctx.tmp('cfg'), 'my_config.py')
    with open(path, 'w') as f:
      f.write(text)
    return [f'--config={path}']
  return setup


refuse_run('c10_config_syntax_error', 10, 'a config file with a syntax error',
           ('my_config.py', 'syntax'), setup=_config_file(
               'def get_config(:\n  pass\n'))
refuse_run('c10_config_no_get_config', 10, 'a config file without get_config',
           ('get_config',), setup=_config_file('X = 1\n'))
refuse_run('c10_config_returns_none', 10, 'a config file whose get_config '
           'returns None', ('get_config', 'None'),
           setup=_config_file('def get_config():\n  return None\n'))
refuse_run('c10_config_missing_fields', 10, 'a config file returning a '
           'ConfigDict with only strategy', ('lacks', 'field'),
           setup=_config_file('import ml_collections\ndef get_config():\n'
                              '  return ml_collections.ConfigDict(dict('
                              "strategy='entropy', num_epochs=1, "
                              'initial_size=20, query_size=10, '
                              'num_rounds=1))\n'))


def _no_workdir(ctx):
  return judge_refusal(ctx.script('run.py', [f'--config={ctx.config()}']),
                       ('workdir',))


_add(Case('c10_no_workdir', 10, 'run', 'run.py without --workdir', 'error',
          ('workdir',), _no_workdir))


def _default_config_elsewhere(ctx):
  return judge_refusal(ctx.script('run.py', [f'--workdir={ctx.wd()}']),
                       ('default.py', 'config'))


_add(Case('c10_default_config_other_cwd', 10, 'run', 'run.py from outside '
          'the repository without --config', 'error',
          ('default.py', 'config'), _default_config_elsewhere))
refuse_run('c10_extra_argument', 10, 'run.py with a stray positional '
           'argument (a forgotten --config.)', ('num_epochs=2',),
           'num_epochs=2')


def _read_only(ctx):
  if os.geteuid() == 0:
    raise Verdict('skipped', 'running as root: chmod does not stop writes')
  workdir = ctx.wd()
  os.makedirs(workdir)
  os.chmod(workdir, 0o500)
  try:
    return judge_refusal(ctx.run(workdir), ('work', 'permission'))
  finally:
    os.chmod(workdir, 0o700)


_add(Case('c10_workdir_read_only', 10, 'run', 'a read-only --workdir',
          'error', ('work', 'permission'), _read_only))


def _full_disk(ctx):
  raise Verdict('skipped', 'a full disk cannot be simulated without root '
                'mounts here')


_add(Case('c10_full_disk', 10, 'run', 'a full disk during a run', 'error',
          ('space',), _full_disk))


def _bench_workdir_file(ctx):
  path = os.path.join(ctx.tmp('f'), 'grid')
  with open(path, 'w') as f:
    f.write('x')
  return judge_refusal(ctx.bench(path), ('grid', 'work'))


_add(Case('c10_bench_workdir_file', 10, 'benchmark', 'benchmark.py '
          '--workdir=<a regular file>', 'error', ('grid', 'work'),
          _bench_workdir_file))


def _bench_workdir_empty(ctx):
  cwd = ctx.tmp('cwd')
  res = ctx.script('benchmark.py', [f'--config={ctx.bench_config()}',
                                    '--workdir=', '--compilation_cache=none'],
                   cwd=cwd)
  verdict, message = judge_refusal(res, ('workdir',))
  if verdict == 'silent':
    message = f'wrote into the current directory: {sorted(os.listdir(cwd))}'
  return verdict, message


_add(Case('c10_bench_workdir_empty', 10, 'benchmark', 'benchmark.py '
          '--workdir=', 'error', ('workdir',), _bench_workdir_empty))
refuse_bench('c10_bench_config_typo', 10, '--config.base.num_epoch=1',
             ('num_epoch',), '--config.base.num_epoch=1')
refuse_bench('c10_bench_unknown_dataset_base', 10, "--config.base.model=foo",
             ('foo',), '--config.base.model=foo')

refuse_report('c10_report_no_args', 'report.py with no argument',
              ('usage',), lambda ctx: [])
refuse_report('c10_report_two_args', 'report.py A B', ('usage',),
              lambda ctx: [ctx.tmp(), ctx.tmp()])
refuse_report('c10_report_empty_dir', 'report.py <empty dir>',
              ('summary.json', 'finished', 'no '), lambda ctx: [ctx.tmp()])
refuse_report('c10_report_missing_dir', 'report.py /nonexistent/bench',
              ('/nonexistent/bench',), lambda ctx: ['/nonexistent/bench'])


def _report_file(ctx):
  path = os.path.join(ctx.tmp(), 'notes.txt')
  with open(path, 'w') as f:
    f.write('x\n')
  return [path]


refuse_report('c10_report_file', 'report.py <a regular file>',
              ('notes.txt',), _report_file)


def _report_damaged(cid, what, names, damage):
  def judge(ctx):
    workdir = ctx.copy_of(ctx.ref_bench())
    damage(ctx, os.path.join(workdir, 'digits', 'entropy', 'seed0'))
    res = ctx.script('report.py', [workdir])
    return judge_refusal(res, names)

  _add(Case(cid, 10, 'report', what, 'error', names, judge))


_report_damaged('c10_report_results_garbage', 'report.py on a cell whose '
                'results.jsonl is random bytes', ('results.jsonl',),
                _garbage('results.jsonl'))
_report_damaged('c10_report_results_empty', 'report.py on a cell whose '
                'results.jsonl is empty', ('results.jsonl',), _empty_results)
_report_damaged('c10_report_results_missing', 'report.py on a finished cell '
                'without results.jsonl', ('results.jsonl',),
                _remove('results.jsonl'))
_report_damaged('c10_report_results_truncated', 'report.py on a cell whose '
                'results.jsonl is cut mid-line', ('results.jsonl',),
                _truncate('results.jsonl', 0.6))


def _grid_garbage(ctx, cell):
  with open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
      cell))), 'grid.json'), 'w') as f:
    f.write('{"cells": [')


_report_damaged('c10_report_grid_garbage', 'report.py with grid.json cut',
                ('grid.json',), _grid_garbage)


def _report_ok(ctx):
  res = ctx.script('report.py', [ctx.copy_of(ctx.ref_bench())])
  if res.rc != 0:
    return 'traceback', 'a good benchmark failed: ' + (
        meaningful_lines(res.stderr) or ['?'])[-1]
  return 'handled', _last_stdout(res)


_add(Case('c10_report_good', 10, 'report', 'report.py on a finished tiny '
          'benchmark (valid)', 'runs', (), _report_ok))


# --------------------------------------------------------------------------
# Python API cases: run in a worker process with PYTHONPATH=REPO.

_API: dict[str, Callable] = {}


def api(cid, cls, what, expect='error', names=()):
  """Registers `fn(tmp)`: raises (judged) or returns a description."""

  def register(fn):
    _API[cid] = fn
    _add(Case(cid, cls, 'api', what, expect, tuple(names), fn))
    return fn

  return register


_MEMO = {}


def _digits():
  if 'digits' not in _MEMO:
    from jal import data  # pylint: disable=g-import-not-at-top
    _MEMO['digits'] = data.load('digits')
  return _MEMO['digits']


def _tiny_config(**fields):
  import ml_collections  # pylint: disable=g-import-not-at-top
  from jal import config as config_lib  # pylint: disable=g-import-not-at-top
  # Built from a dict, as from a user's JSON, so that any type gets through
  # to jal's own checks.
  return ml_collections.ConfigDict({**config_lib.default().to_dict(),
                                    **TINY, **fields})


def _loop_run(tmp, dataset=None, **fields):
  from jal import loop  # pylint: disable=g-import-not-at-top
  summary = loop.run(_tiny_config(**fields), os.path.join(tmp, 'work'),
                     dataset=dataset)
  return (f"ran: final accuracy {summary['final_accuracy']:.3f}, "
          f"records {len(summary['test_accuracy'])}")


def _ds(**changes):
  return _digits()._replace(**changes)


def _api_dataset(cid, what, names, make):
  api(cid, 7, 'loop.run(dataset=...) with ' + what, names=names)(
      lambda tmp: _loop_run(tmp, dataset=make()))


_api_dataset('c7_pool_label_10', 'pool label 10 of 10 classes',
             ('label',), lambda: _ds(pool_labels=_set(_digits().pool_labels,
                                                      3, 10)))
_api_dataset('c7_pool_label_minus1', 'pool label -1', ('label',),
             lambda: _ds(pool_labels=_set(_digits().pool_labels, 3, -1)))
_api_dataset('c7_test_label_10', 'test label 10 of 10 classes', ('label',),
             lambda: _ds(test_labels=_set(_digits().test_labels, 0, 10)))
_api_dataset('c7_num_classes_5', 'num_classes=5 but labels up to 9',
             ('num_classes', 'label'), lambda: _ds(num_classes=5))
_api_dataset('c7_num_classes_0', 'num_classes=0', ('num_classes',),
             lambda: _ds(num_classes=0))
_api_dataset('c7_num_classes_float', 'num_classes=10.0 (a float)',
             ('num_classes',), lambda: _ds(num_classes=10.0))
_api_dataset('c7_pool_lengths', 'pool_labels one shorter than pool_images',
             ('pool', 'label'), lambda: _ds(pool_labels=_digits().pool_labels[
                 :-1]))
_api_dataset('c7_test_lengths', 'test_labels 10 longer than test_images',
             ('test', 'label'), lambda: _ds(test_labels=_np().concatenate(
                 [_digits().test_labels] * 2)[:510]))
_api_dataset('c7_no_channel_axis', 'images [N, 8, 8] without a channel axis',
             ('image', 'shape', 'channel'), lambda: _ds(
                 pool_images=_digits().pool_images[..., 0],
                 test_images=_digits().test_images[..., 0]))
_api_dataset('c7_test_shape_differs', 'test images 9x9 while pool is 8x8',
             ('test', 'shape'), lambda: _ds(test_images=_np().zeros(
                 (500, 9, 9, 1), _np().float32)))
_api_dataset('c7_empty_pool', 'an empty pool', ('pool',), lambda: _ds(
    pool_images=_digits().pool_images[:0], pool_labels=_digits().pool_labels[
        :0]))
_api_dataset('c7_empty_test', 'an empty test set', ('test',), lambda: _ds(
    test_images=_digits().test_images[:0], test_labels=_digits().test_labels[
        :0]))
_api_dataset('c7_pool_nan', 'a NaN pixel in the pool', ('nan', 'pool'),
             lambda: _ds(pool_images=_set(_digits().pool_images, (0, 0, 0, 0),
                                          float('nan'))))
_api_dataset('c7_test_inf', 'an inf pixel in the test set', ('inf', 'test'),
             lambda: _ds(test_images=_set(_digits().test_images, (1, 2, 3, 0),
                                          float('inf'))))
_api_dataset('c7_float_labels', 'pool labels as float 3.5', ('label',),
             lambda: _ds(pool_labels=_digits().pool_labels.astype('float32')
                         + 0.5))
_api_dataset('c7_labels_2d', 'pool labels one-hot [N, 10]', ('label',),
             lambda: _ds(pool_labels=_np().eye(10, dtype='int32')[
                 _digits().pool_labels]))
_api_dataset('c7_images_uint8', 'pool images uint8 0..255 while test is '
             'float', ('image', 'dtype'), lambda: _ds(
                 pool_images=(_digits().pool_images * 0 + 200).astype('uint8')))
_api_dataset('c7_dataset_tuple', 'a plain tuple instead of a Dataset',
             ('dataset',), lambda: tuple(_digits()))


def _set(array, index, value):
  array = _np().array(array)
  array[index] = value
  return array


@api('c7_valid_user_dataset', 7, 'loop.run with a valid hand-made Dataset '
     '(digits, pool cut to 300)', expect='runs')
def _valid_dataset(tmp):
  d = _digits()
  return _loop_run(tmp, dataset=d._replace(pool_images=d.pool_images[:300],
                                           pool_labels=d.pool_labels[:300]))


# Class 8: public primitives.

def _lp(n=50, c=10, k=1, seed=0):
  import jax  # pylint: disable=g-import-not-at-top
  return jax.nn.log_softmax(jax.random.normal(jax.random.key(seed), (k, n, c)))


def _mask(n=50, labeled=(), numpy=False):
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  mask = _np().zeros(n, bool)
  mask[list(labeled)] = True
  return mask if numpy else jnp.asarray(mask)


def _query(name, inputs, mask, q, **hp):
  import jax  # pylint: disable=g-import-not-at-top
  from jal import acquisition  # pylint: disable=g-import-not-at-top
  out = acquisition.query(acquisition.get(name), jax.random.key(0), inputs,
                          mask, q, **hp)
  return _describe(out, mask)


def _describe(indices, mask=None):
  indices = _np().asarray(indices)
  text = f'returned {indices.ravel()[:12].tolist()}'
  repeats = indices.size - _np().unique(indices).size
  if repeats:
    text += f' ({repeats} repeated)'
  if mask is not None and indices.size:
    mask = _np().asarray(mask)
    flat = indices.ravel()
    if (flat >= 0).all() and (flat < mask.shape[0]).all():
      text += f' ({int(mask[flat].sum())} already labeled)'
    else:
      text += ' (out of range)'
  return text


def _emb(n=50, d=4, seed=0):
  import jax  # pylint: disable=g-import-not-at-top
  return jax.random.normal(jax.random.key(seed), (n, d))


_QS = ('query_size', 'unlabeled')
api('c8_entropy_q_gt_unlabeled', 8, 'query(entropy) q=45 with 10 unlabeled',
    names=_QS)(lambda t: _query('entropy', {'log_probs': _lp()},
                                _mask(labeled=range(40)), 45))
api('c8_entropy_all_labeled', 8, 'query(entropy) q=5 with every point '
    'labeled', names=_QS)(lambda t: _query(
        'entropy', {'log_probs': _lp()}, _mask(labeled=range(50)), 5))
api('c8_random_q_gt_unlabeled', 8, 'query(random) q=20 with 10 unlabeled',
    names=_QS)(lambda t: _query('random', {}, _mask(labeled=range(40)), 20))
api('c8_margin_q_gt_pool', 8, 'query(margin) q=60 on a pool of 50',
    names=_QS)(lambda t: _query('margin', {'log_probs': _lp()}, _mask(), 60))
api('c8_kcenter_q_gt_unlabeled', 8, 'query(kcenter) q=15 with 10 unlabeled',
    names=_QS)(lambda t: _query('kcenter', {'embeddings': _emb()},
                                _mask(labeled=range(40)), 15))
api('c8_kmeans_q_gt_unlabeled', 8, 'query(kmeans) q=15 with 10 unlabeled',
    names=_QS)(lambda t: _query('kmeans', {'embeddings': _emb()},
                                _mask(labeled=range(40)), 15))
api('c8_bald_all_labeled', 8, 'query(bald) with every point labeled',
    names=_QS)(lambda t: _query('bald', {'mc_log_probs': _lp(k=4)},
                                _mask(labeled=range(50)), 3))
api('c8_power_bald_q_gt', 8, 'query(power_bald) q=20 with 10 unlabeled',
    names=_QS)(lambda t: _query('power_bald', {'mc_log_probs': _lp(k=4)},
                                _mask(labeled=range(40)), 20))
api('c8_badge_q_gt_unlabeled', 8, 'query(badge) q=15 with 10 unlabeled',
    names=_QS)(lambda t: _query('badge', {'log_probs': _lp(),
                                          'embeddings': _emb()},
                                _mask(labeled=range(40)), 15))
api('c8_query_size_zero', 8, 'query(entropy) q=0', names=('query_size',))(
    lambda t: _query('entropy', {'log_probs': _lp()}, _mask(), 0))
api('c8_query_size_negative', 8, 'query(entropy) q=-3',
    names=('query_size',))(
        lambda t: _query('entropy', {'log_probs': _lp()}, _mask(), -3))
api('c8_log_probs_rank2', 8, 'query(entropy) with log_probs [N, C] (no K '
    'axis)', names=('log_probs', 'shape'))(lambda t: _query(
        'entropy', {'log_probs': _lp()[0]}, _mask(), 5))
api('c8_log_probs_rank4', 8, 'query(bald) with mc_log_probs [1, K, N, C]',
    names=('log_probs', 'shape'))(lambda t: _query(
        'bald', {'mc_log_probs': _lp(k=4)[None]}, _mask(), 5))
api('c8_mask_wrong_length', 8, 'query(entropy) with a mask of 40 for 50 '
    'points', names=('mask', 'shape'))(lambda t: _query(
        'entropy', {'log_probs': _lp()}, _mask(40), 5))
api('c8_log_probs_nan', 8, 'query(entropy) with all-NaN log_probs',
    names=('nan', 'finite'))(lambda t: _query(
        'entropy', {'log_probs': _lp() * _np().nan}, _mask(), 5))
api('c8_bald_nan', 8, 'query(bald) with all-NaN mc_log_probs',
    names=('nan', 'finite'))(lambda t: _query(
        'bald', {'mc_log_probs': _lp(k=4) * _np().nan}, _mask(), 5))
api('c8_missing_input', 8, 'query(entropy) with inputs={} (no log_probs)',
    names=('log_probs',))(lambda t: _query('entropy', {}, _mask(), 5))
api('c8_unknown_hparam', 8, 'query(entropy, beta=2)', names=('beta',))(
    lambda t: _query('entropy', {'log_probs': _lp()}, _mask(), 5, beta=2.0))
api('c8_power_bald_beta_neg', 8, 'query(power_bald, beta=-2)',
    names=('beta',))(lambda t: _query(
        'power_bald', {'mc_log_probs': _lp(k=4)}, _mask(), 5, beta=-2.0))
api('c8_get_unknown', 8, "acquisition.get('entropyy')", names=('entropyy',))(
    lambda t: __import__('jal.acquisition').acquisition.get('entropyy'))


def _batchbald_fn(mask, q, **kwargs):
  import jax  # pylint: disable=g-import-not-at-top
  from jal.acquisition import batchbald  # pylint: disable=g-import-not-at-top
  out, _ = batchbald.batchbald(jax.random.key(0), _lp(k=4), mask, q, **kwargs)
  return _describe(out, mask)


api('c8_batchbald_fn_q_gt', 8, 'acquisition.batchbald.batchbald q=15 with '
    '10 unlabeled', names=_QS)(lambda t: _batchbald_fn(
        _mask(labeled=range(40)), 15, num_samples=100))
api('c8_batchbald_fn_all_labeled', 8, 'acquisition.batchbald.batchbald with '
    'every point labeled', names=_QS)(lambda t: _batchbald_fn(
        _mask(labeled=range(50)), 3, num_samples=100))
api('c8_batchbald_fn_samples_0', 8, 'acquisition.batchbald.batchbald '
    'num_samples=0', names=('num_samples',))(lambda t: _batchbald_fn(
        _mask(), 5, num_samples=0))


def _cluster(fn_name, *args, **kwargs):
  from jal import cluster  # pylint: disable=g-import-not-at-top
  out = getattr(cluster, fn_name)(*args, **kwargs)
  out = out[1] if isinstance(out, tuple) else out
  out = _np().asarray(out)
  finite = bool(_np().isfinite(out).all()) if out.dtype.kind == 'f' else True
  return f'returned {out.dtype}{list(out.shape)}' + (
      '' if finite else ' with NaN/inf')


def _jnp_ones(n):
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  return jnp.ones((n,), jnp.float32)


def _key():
  import jax  # pylint: disable=g-import-not-at-top
  return jax.random.key(0)


api('c8_kmeans_k_gt_n', 8, 'cluster.kmeans k=60 on 50 points',
    names=('num_centres', 'centres'))(lambda t: _cluster(
        'kmeans', _key(), _emb(), _jnp_ones(50), 60))
api('c8_kmeans_zero_weights', 8, 'cluster.kmeans with every weight 0',
    names=('weight',))(lambda t: _cluster(
        'kmeans', _key(), _emb(), _jnp_ones(50) * 0, 5))
api('c8_kmeans_nan', 8, 'cluster.kmeans on points holding NaN',
    names=('nan', 'finite'))(lambda t: _cluster(
        'kmeans', _key(), _emb() * _np().nan, _jnp_ones(50), 5))
api('c8_farthest_first_k_gt', 8, 'cluster.farthest_first 20 picks from 10 '
    'candidates', names=('num_picks', 'candidates'))(lambda t: _describe(
        __import__('jal.cluster').cluster.farthest_first(
            _emb(), _jnp_ones(50) * _np().inf,
            _mask(labeled=range(10)), 20), ~_mask(labeled=range(10))))
def _knn_k_is_n(tmp):
  """k = N: the documented answer marks the missing k-th neighbour +inf."""
  del tmp
  from jal import cluster  # pylint: disable=g-import-not-at-top
  distances, _ = cluster.knn(_emb(), 50)
  distances = _np().asarray(distances)
  if not (_np().isinf(distances[:, -1]).all() and
          _np().isfinite(distances[:, :-1]).all()):
    raise RuntimeError('missing neighbours are not marked +inf')
  return 'the 50th neighbour of each of 50 points is marked +inf'


api('c8_knn_k_ge_n', 8, 'cluster.knn k=50 on 50 points (documented: +inf '
    'where fewer than k others exist)', expect='runs')(_knn_k_is_n)
api('c8_knn_nan', 8, 'cluster.knn on points holding NaN',
    names=('nan', 'finite'))(lambda t: _cluster('knn', _emb() * _np().nan, 5))
api('c8_pca_dim_0', 8, 'cluster.pca_project dim=0', names=('dim',))(
    lambda t: _cluster('pca_project', _emb(), 0))
api('c8_pca_dim_gt', 8, 'cluster.pca_project dim=10 on 4-D points',
    names=('dim',))(lambda t: _cluster('pca_project', _emb(), 10))
api('c8_pca_dim_neg', 8, 'cluster.pca_project dim=-1', names=('dim',))(
    lambda t: _cluster('pca_project', _emb(), -1))
api('c8_pca_nan', 8, 'cluster.pca_project on points holding NaN',
    names=('nan', 'finite'))(lambda t: _cluster(
        'pca_project', _emb() * _np().nan, 2))
api('c8_nearest_distinct_k_gt', 8, 'cluster.nearest_distinct 8 centres, 5 '
    'candidates', names=('centres', 'candidates'))(lambda t: _describe(
        __import__('jal.cluster').cluster.nearest_distinct(
            _emb(), _emb(8, seed=1), _mask(labeled=range(5))),
        ~_mask(labeled=range(5))))


api('c8_kmeans_numpy_mask', 8, 'query(kmeans) q=5 with a NumPy mask (valid)',
    expect='runs')(lambda t: _query('kmeans', {'embeddings': _emb()},
                                    _mask(labeled=range(10), numpy=True), 5))
api('c8_kcenter_numpy_mask', 8, 'query(kcenter) q=5 with a NumPy mask '
    '(valid)', expect='runs')(lambda t: _query(
        'kcenter', {'embeddings': _emb()}, _mask(labeled=range(10),
                                                 numpy=True), 5))


def _top_k(t):
  from jal import acquisition  # pylint: disable=g-import-not-at-top
  mask = _mask(labeled=range(45))
  return _describe(acquisition.top_k_unlabeled(
      _np().arange(50, dtype='float32'), mask, 8), mask)


api('c8_top_k_unlabeled_q_gt', 8, 'top_k_unlabeled q=8 with 5 unlabeled',
    names=_QS)(_top_k)


@api('c8_check_hparams_type', 8, "check_hparams(power_bald, beta='2')",
     names=('beta',))
def _check_hparams_type(tmp):
  from jal import acquisition  # pylint: disable=g-import-not-at-top
  return str(acquisition.check_hparams(acquisition.get('power_bald'),
                                       {'beta': '2'}))


# Class 1/3/5/9 through the API.

@api('c3_api_weight_decay_nan', 3, 'loop.run with weight_decay=nan',
     names=('weight_decay',))
def _api_wd(tmp):
  return _loop_run(tmp, weight_decay=float('nan'))


@api('c3_api_momentum_string', 3, "loop.run with optimizer='sgd', "
     "momentum='0.9' (a string)", names=('momentum',))
def _api_momentum(tmp):
  return _loop_run(tmp, optimizer='sgd', momentum='0.9')


@api('c3_api_lr_string', 3, "loop.run with learning_rate='1e-3' (a string)",
     names=('learning_rate',))
def _api_lr(tmp):
  return _loop_run(tmp, learning_rate='1e-3')


@api('c3_api_epochs_bool', 3, 'loop.run with num_epochs=True',
     names=('num_epochs',))
def _api_epochs(tmp):
  return _loop_run(tmp, num_epochs=True)


@api('c3_api_weight_decay_none', 3, 'loop.run with weight_decay=None (no '
     'decay, or refused)', expect='either', names=('weight_decay',))
def _api_wd_none(tmp):
  return _loop_run(tmp, weight_decay=None)


@api('c10_api_workdir_none', 10, 'loop.run(config, workdir=None)',
     names=('workdir',))
def _api_workdir_none(tmp):
  from jal import loop  # pylint: disable=g-import-not-at-top
  loop.run(_tiny_config(), None)
  return 'ran'


@api('c9_api_run_grid_strategies_list_str', 9, "study.run_grid with "
     "strategies=['random', 'entropyy']", names=('entropyy',))
def _api_grid_unknown(tmp):
  import ml_collections  # pylint: disable=g-import-not-at-top
  from jal import study  # pylint: disable=g-import-not-at-top
  bench = ml_collections.ConfigDict(dict(
      base=_tiny_config(), datasets=['digits'],
      strategies=['random', 'entropyy'], seeds=[0]))
  study.run_grid(bench, os.path.join(tmp, 'grid'), log=lambda line: None)
  return 'ran'


@api('c9_api_expand_datasets_string', 9, "study.expand with datasets='digits'"
     ' (one dataset, not letters)', expect='runs')
def _api_expand(tmp):
  import ml_collections  # pylint: disable=g-import-not-at-top
  from jal import study  # pylint: disable=g-import-not-at-top
  bench = ml_collections.ConfigDict(dict(
      base=_tiny_config(), datasets='digits', strategies='random', seeds=[0]))
  cells = study.expand(bench)
  if [c.dataset for c in cells] != ['digits']:
    raise RuntimeError(f'wrong cells {[c.dataset for c in cells]}')
  return f'{len(cells)} cells: {[c.dataset for c in cells]}'


@api('c9_api_expand_seeds_int', 9, 'study.expand with seeds=3 (one seed, '
     'the seed 3, as documented)', expect='runs')
def _api_expand_seeds(tmp):
  import ml_collections  # pylint: disable=g-import-not-at-top
  from jal import study  # pylint: disable=g-import-not-at-top
  bench = ml_collections.ConfigDict(dict(
      base=_tiny_config(), datasets=['digits'], strategies='random', seeds=3))
  cells = study.expand(bench)
  if [c.seed for c in cells] != [3]:
    raise RuntimeError(f'wrong seeds {[c.seed for c in cells]}')
  return f'{len(cells)} cells'


@api('c10_api_load_unknown', 10, "data.load('cifar11')", names=('cifar11',))
def _api_load_unknown(tmp):
  from jal import data  # pylint: disable=g-import-not-at-top
  data.load('cifar11')
  return 'loaded'


@api('c10_api_load_pool_size_0', 10, "data.load('digits', pool_size=0)",
     names=('pool_size',))
def _api_load_pool(tmp):
  from jal import data  # pylint: disable=g-import-not-at-top
  data.load('digits', pool_size=0)
  return 'loaded'


@api('c10_api_report_write_empty', 10, 'report.write(<empty dir>)',
     names=('summary.json', 'finished'))
def _api_report(tmp):
  from jal import report  # pylint: disable=g-import-not-at-top
  return report.write(tmp)


@api('c10_api_config_from_missing_file', 10,
     "config.from_file('/nonexistent.py')", names=('/nonexistent.py',))
def _api_from_file(tmp):
  from jal import config  # pylint: disable=g-import-not-at-top
  config.from_file('/nonexistent.py')
  return 'loaded'


@api('c1_api_resume_identical', 1, 'loop.run twice on one workdir (the second '
     'a no-op resume)', expect='runs')
def _api_resume(tmp):
  first = _loop_run(tmp)
  from jal import loop  # pylint: disable=g-import-not-at-top
  with open(os.path.join(tmp, 'work', 'results.jsonl')) as f:
    before = [_untimed(json.loads(l)) for l in f]
  loop.run(_tiny_config(), os.path.join(tmp, 'work'))
  with open(os.path.join(tmp, 'work', 'results.jsonl')) as f:
    after = [_untimed(json.loads(l)) for l in f]
  if before != after:
    raise Verdict('lost', 'records changed on a no-op resume')
  return first + '; resume kept the records'


def run_api_case(cid: str, tmp: str) -> tuple[str, str]:
  """Runs one API case in this (worker) process and judges it."""
  case = next(c for c in CASES if c.id == cid)
  from jal import errors  # pylint: disable=g-import-not-at-top
  try:
    result = _API[cid](tmp)
  except Verdict as v:
    return v.verdict, v.message
  except Exception as e:  # pylint: disable=broad-except
    message = str(e).strip() or type(e).__name__
    first = message.splitlines()[0] if message else ''
    where = os.path.abspath(traceback.extract_tb(e.__traceback__)[-1].filename)
    obscure = re.search(r'site-packages/(jax|jaxlib|numpy|ml_collections|'
                        r'optax|flax)/', where)
    kind = type(e).__name__
    if case.expect == 'runs':
      return 'traceback', f'{kind} on a valid input: {first}'
    if not (isinstance(e, errors.JalError) or (
        isinstance(e, (ValueError, FileNotFoundError)) and not obscure)):
      return 'traceback', f'{kind}: {first}'
    if '\n' in message:
      return 'traceback', f'{kind}, {len(message.splitlines())} lines: {first}'
    if not _names_ok(message, case.names):
      return 'traceback', (f'{kind} does not name {"/".join(case.names)}: '
                           f'{first}')
    return 'clear', f'{kind}: {first}'
  if case.expect in ('runs', 'either'):
    return 'handled', str(result)
  return 'silent', f'no exception: {result}'


def worker(ids: list[str]) -> None:
  """Runs API cases one by one, printing a marked JSON line for each."""
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')
  for cid in ids:
    print(_MARK + json.dumps(dict(start=cid)), flush=True)
    tmp = tempfile.mkdtemp(prefix=f'probe_{cid}_')
    start = time.monotonic()
    try:
      verdict, message = run_api_case(cid, tmp)
    except BaseException as e:  # pylint: disable=broad-except
      verdict, message = 'traceback', f'{type(e).__name__}: {e}'
    shutil.rmtree(tmp, ignore_errors=True)
    print(_MARK + json.dumps(dict(id=cid, verdict=verdict, message=message,
                                  seconds=time.monotonic() - start)),
          flush=True)


def run_api_batch(ctx: Ctx, ids: list[str], report) -> None:
  """Runs API cases in worker processes, one per batch, restarting on hangs."""
  todo = list(ids)
  while todo:
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), '--worker',
         f'--repo={ctx.repo}', *todo], cwd=ctx.tmp('worker'), env=ctx.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    current, deadline, buffer = None, time.monotonic() + ctx.timeout, ''
    stderr_chunks = []
    while True:
      remaining = deadline - time.monotonic()
      if remaining <= 0:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        cid = current or todo[0]
        report(cid, 'hang', f'no answer after {ctx.timeout:.0f} s',
               ctx.timeout)
        todo.remove(cid)
        break
      ready, _, _ = select.select([proc.stdout, proc.stderr], [], [],
                                  min(remaining, 5))
      if proc.stderr in ready:
        chunk = os.read(proc.stderr.fileno(), 65536).decode(errors='replace')
        stderr_chunks.append(chunk)
        stderr_chunks[:] = [''.join(stderr_chunks)[-20000:]]
      if proc.stdout in ready:
        chunk = os.read(proc.stdout.fileno(), 65536).decode(errors='replace')
        if not chunk:
          proc.wait()
          if current is not None:
            tail = meaningful_lines(''.join(stderr_chunks)) or ['?']
            report(current, 'traceback',
                   f'worker crashed (exit {proc.returncode}): {tail[-1]}', 0)
            todo.remove(current)
          elif todo:  # the worker died before its first case
            tail = meaningful_lines(''.join(stderr_chunks)) or ['?']
            raise RuntimeError(f'API worker failed: {tail[-1]}')
          break
        buffer += chunk
        while '\n' in buffer:
          line, buffer = buffer.split('\n', 1)
          if not line.startswith(_MARK):
            continue
          msg = json.loads(line[len(_MARK):])
          if 'start' in msg:
            current = msg['start']
            deadline = time.monotonic() + ctx.timeout
          else:
            report(msg['id'], msg['verdict'], msg['message'], msg['seconds'])
            todo.remove(msg['id'])
            current = None


# --------------------------------------------------------------------------
# Driver.

def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--repo', default=os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))), help='the jal checkout to probe')
  parser.add_argument('--out', help='write the verdicts as JSON here')
  parser.add_argument('--only', help='run only case ids matching this regex')
  parser.add_argument('--timeout', type=float, default=120,
                      help='seconds per case before it counts as a hang')
  parser.add_argument('--list', action='store_true', help='list the cases')
  parser.add_argument('--keep', action='store_true',
                      help='keep the temporary directories')
  parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
  args, rest = parser.parse_known_args()
  if args.worker:
    worker(rest)
    return
  cases = [c for c in CASES if not args.only or re.search(args.only, c.id)]
  if args.list:
    for c in cases:
      print(f'{c.id:38s} {c.cls:2d} {c.entry:9s} {c.expect:6s} {c.input}')
    print(f'{len(cases)} cases')
    return
  root = tempfile.mkdtemp(prefix='jal_probe_')
  ctx = Ctx(args.repo, root, args.timeout)
  results = {}
  start = time.monotonic()

  def report(cid, verdict, message, seconds):
    case = next(c for c in CASES if c.id == cid)
    message = ' '.join(str(message).split())
    results[cid] = dict(id=cid, cls=case.cls, entry=case.entry,
                        input=case.input, expect=case.expect,
                        names=list(case.names), verdict=verdict,
                        message=message, seconds=round(seconds, 1))
    print(f'{cid:38s} {case.cls:2d}  {verdict:9s} {message[:200]}', flush=True)

  print(f'probing {ctx.repo} with {len(cases)} cases (tmp {root})',
        flush=True)
  try:
    api_ids = [c.id for c in cases if c.entry == 'api']
    if api_ids:
      run_api_batch(ctx, api_ids, report)
    for case in cases:
      if case.entry == 'api':
        continue
      t0 = time.monotonic()
      try:
        verdict, message = case.judge(ctx)
      except Verdict as v:
        verdict, message = v.verdict, v.message
      except Exception as e:  # pylint: disable=broad-except
        verdict, message = 'skipped', f'probe error: {type(e).__name__}: {e}'
      report(case.id, verdict, message, time.monotonic() - t0)
  finally:
    if not args.keep:
      _rmtree(root)
  ordered = [results[c.id] for c in cases if c.id in results]
  counts = collections.Counter(r['verdict'] for r in ordered)
  print()
  print(f'{len(ordered)} cases in {time.monotonic() - start:.0f} s: ' +
        ', '.join(f'{v} {counts[v]}' for v in VERDICTS if counts[v]))
  for cls in sorted(CLASSES):
    of = [r for r in ordered if r['cls'] == cls]
    if of:
      per = collections.Counter(r['verdict'] for r in of)
      print(f'  class {cls:2d} {CLASSES[cls]:30s} {len(of):3d}: ' +
            ', '.join(f'{v} {per[v]}' for v in VERDICTS if per[v]))
  judged = len(ordered) - counts['skipped']
  if judged:
    print(f'clear or handled: {counts["clear"] + counts["handled"]}/{judged} '
          f'({100 * (counts["clear"] + counts["handled"]) / judged:.1f}%)')
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(dict(repo=ctx.repo, counts=dict(counts), cases=ordered), f,
                indent=1)


def _rmtree(root: str) -> None:
  """Removes `root`, making read-only directories writable first."""
  for path, dirs, _ in os.walk(root):
    for d in dirs:
      full = os.path.join(path, d)
      if not os.path.islink(full):
        os.chmod(full, os.stat(full).st_mode | stat.S_IWUSR | stat.S_IXUSR)
  shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
  main()
