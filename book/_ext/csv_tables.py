"""Publish each profile's result tables beside its pages: book/results/PROFILE/tables/NOTEBOOK/NAME.csv is
copied to the same path under the HTML output, where a table's caption links to it
(kslottery.report.tables.csv_link). Sphinx copies only the files a page references through its own roles, and a
notebook's HTML output is not one of them."""

import shutil
from pathlib import Path


def copy_tables(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    src = Path(app.srcdir)
    for csv in sorted(src.glob("results/*/tables/*/*.csv")):
        out = Path(app.outdir) / csv.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(csv, out)


def setup(app):
    app.connect("build-finished", copy_tables)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
