"""The quickstart notebook runs headless, top to bottom, without an error."""

import os
import sys

import nbclient
import nbformat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, 'notebooks', 'quickstart.ipynb')


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  assert notebook.metadata.kernelspec.name == 'python3'
  client = nbclient.NotebookClient(
      notebook, timeout=300, kernel_name='python3',
      resources={'metadata': {'path': str(tmp_path)}})
  # The kernel is this interpreter's (the venv's), where jal is installed.
  monkeypatch.setenv('PATH', os.path.dirname(sys.executable) + os.pathsep +
                     os.environ.get('PATH', ''))
  client.execute()  # raises CellExecutionError on the first failing cell
  outputs = [o for cell in notebook.cells if cell.cell_type == 'code'
             for o in cell.get('outputs', [])]
  text = ''.join(o.get('text', '') for o in outputs)
  assert 'random   AUBC' in text and 'entropy  AUBC' in text
  assert 'get("entropy").select:' in text
  images = [o for o in outputs if 'image/png' in o.get('data', {})]
  assert len(images) == 2  # the curves and the chosen digits
