"""A submitted job's life: consent and submission (runner), following it (watch), what it leaves in
the notebook (record), what comes back after it COMPLETED (delivery: --return, --pull, with the keys
kept for a new kernel in keys), the local history and the line magics' work (history, joblist).

May import `cell`, `checkresult`, `remote` and, to show a job, `views`; never `checks` eagerly (the
runner asks for prices and the checks table lazily).
"""
