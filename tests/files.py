"""File snapshots for tests that check nothing already written changed."""

import os


def snapshot(root) -> dict[str, bytes]:
  """{relative path: bytes} of every regular file under `root`."""
  found = {}
  for folder, _, files in os.walk(root):
    for name in files:
      path = os.path.join(folder, name)
      if os.path.isfile(path):
        with open(path, 'rb') as f:
          found[os.path.relpath(path, root)] = f.read()
  return found
