"""Views of a job, all fed by the same watcher events: the notebook record (bundle), text for
unattended runs (text), widgets for people (widgets).

Views render and never call the Hub: they import the record and event types from `jobs` and the
result type from `checkresult`; never `checks` or `remote`.
"""
