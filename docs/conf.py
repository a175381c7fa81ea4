"""Sphinx configuration of the course website: myst-nb renders the committed notebooks without executing them."""
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

# The site shows the notebooks where the course keeps them: copy them in (docs/notebooks/ is git-ignored), so that
# links between notebooks and their solutions resolve inside the site.
shutil.rmtree(DOCS / "notebooks", ignore_errors=True)
shutil.copytree(DOCS.parent / "notebooks", DOCS / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))

project = "Generating Images with Autoencoders"
author = "The course's authors"
copyright = "2026, the course's authors"

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax", "sphinx.ext.viewcode"]
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "README.md"]

# The notebooks are committed with the outputs of a full-mode run; the site shows those and never re-runs them.
nb_execution_mode = "off"
nb_output_stderr = "remove"        # progress bars and warnings of the run are not part of the page
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
suppress_warnings = ["mystnb.unknown_mime_type"]  # the widget state of tqdm's progress bars

autodoc_member_order = "bysource"
autodoc_typehints = "description"

html_theme = "sphinx_book_theme"
html_title = project
html_theme_options = {
    "show_navbar_depth": 1,
    "home_page_in_toc": True,
    "use_download_button": True,
    # A notebook page gives its code the full width (see _static/course.css): no right sidebar there; its section
    # list moves to the left sidebar, under the course's pages.
    "secondary_sidebar_items": {"*": ["page-toc"], "notebooks/**": []},
}
html_sidebars = {"notebooks/**": ["navbar-logo.html", "icon-links.html", "search-button-field.html",
                                  "sbt-sidebar-nav.html", "page-toc.html"]}
html_static_path = ["_static"]
html_css_files = ["course.css"]
