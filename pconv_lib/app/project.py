"""Where the course lives: the one place for the repository URL and the links built from it.

``REPOSITORY_URL`` must equal ``[project.urls] Repository`` in ``pyproject.toml``; the Colab install
cell of every notebook (``install_command()``), and the README's "Open in Colab" and Binder links
(``colab_url``, ``binder_url``) are checked against it by ``tests/test_packaging.py``. Working from a
fork: change the URL here and in ``pyproject.toml``, then let that test show every line to update.
"""

from __future__ import annotations

REPOSITORY_URL = "https://github.com/pconv-course/pconv-course"
#: The branch that Colab and Binder links open.
BRANCH = "main"
#: The file Binder opens first: the course map.
BINDER_START_PAGE = "README.md"


def github_slug() -> str:
    """``owner/name`` of the repository, e.g. ``pconv-course/pconv-course``."""
    return REPOSITORY_URL.removeprefix("https://github.com/").rstrip("/")


def install_command() -> str:
    """The line the first cell of every notebook runs on Colab (Colab keeps its own torch and numpy)."""
    return f'%pip install -q "pconv-course @ git+{REPOSITORY_URL}"'


def colab_url(path: str) -> str:
    """Open ``path`` (a notebook, relative to the repository root) in Google Colab."""
    return f"https://colab.research.google.com/github/{github_slug()}/blob/{BRANCH}/{path}"


def binder_url(path: str = BINDER_START_PAGE) -> str:
    """Open ``path`` (relative to the repository root) in JupyterLab on mybinder.org."""
    return f"https://mybinder.org/v2/gh/{github_slug()}/{BRANCH}?urlpath=lab/tree/{path}"
