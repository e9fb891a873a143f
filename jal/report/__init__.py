"""The report of a comparative study (DeepAL+ §3): tables, tests and figures.

`write(workdir)` turns a study directory (`jal.study.run_grid`) into
`workdir/report.md` with PNG figures beside it. The package has one module
per job:

- `runs`: the study's finished cells and their per-round records;
- `stats`: the statistics, pure functions of plain numbers;
- `families`: which strategies share a panel of the curves;
- `figures`: matplotlib figures, drawn without pyplot or a backend switch;
- `markdown`: the report's layout and `write`.
"""

from jal.report import families
from jal.report import figures
from jal.report import markdown
from jal.report import runs
from jal.report import stats
from jal.report.markdown import (BASELINE, FULL_ROW, REPORT, gains,
                                 imbalanced, jal_commit, protocol, write)
from jal.report.runs import Run, Task, find_cells, group, load_runs, task_names
from jal.report.stats import (ALPHA, MARGIN, PairedTest, best, gain,
                              mean_std, paired_test, ranking, steady_seconds,
                              win_tie_loss)
