"""Views of a job: the notebook record (bundle), text for unattended runs, widgets for people."""
