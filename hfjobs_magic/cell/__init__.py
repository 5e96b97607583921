"""What a cell becomes, before anything talks to the Hub: flags -> `JobSpec` (spec), what the code
does (scan, names), the PEP 723 script (script, deps) and the `--outputs` wrapper shipped in the job
(wrapping, persist).

Pure: imports only the standard library, IPython/huggingface_hub helpers and `hfjobs_magic.mask`;
never `checks`, `remote`, `jobs` or `views`.
"""
