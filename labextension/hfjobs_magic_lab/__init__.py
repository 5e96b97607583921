"""The JupyterLab 4 / Notebook 7 extension of hfjobs-magic, prebuilt: no Node needed to install it.

It renders `application/vnd.hfjob+json` outputs as job cards and adds "Run as HF Job"
to every code cell. The files live in share/jupyter/labextensions/hfjobs-magic-lab.
"""


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "hfjobs-magic-lab"}]
