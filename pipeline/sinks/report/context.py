"""The report's "About this run" section: what a reader needs to trust a run and repeat it
(the job's parameters, the Datastore it read, the command line, the versions that ran it)
and the files it wrote, with their sizes. Every value is data, HTML-escaped here. Pure: the
values come from the summary (``pipeline.graph.summary``)."""
from __future__ import annotations

import html
from typing import Optional


def _e(v) -> str:
    return html.escape(str(v), quote=True)


def _rows(rows: list, cls: str) -> str:
    body = "".join(f'<tr><td><b>{_e(k)}</b></td><td>{v}</td></tr>' for k, v in rows)
    return f'<table class="{cls}"><tbody>{body}</tbody></table>'


def size_text(n: Optional[int]) -> str:
    """``812 B``, ``4.2 KB``, ``1.3 MB`` (powers of 1024)."""
    if n is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return ""  # not reached


def params_table(params: dict) -> str:
    """The job's parameters (--params), one row each: a rename's from and to."""
    if not params:
        return '<p class="params none">no parameters</p>'
    body = "".join(f'<tr><td class="param-name">{_e(k)}</td>'
                   f'<td class="param-value"><code>{_e(v)}</code></td></tr>'
                   for k, v in params.items())
    return (f'<table class="params"><thead><tr><th>parameter</th><th>value</th></tr></thead>'
            f"<tbody>{body}</tbody></table>")


def target_rows(target: Optional[dict]) -> list:
    """[label, HTML] of the Datastore the run read."""
    if not target:
        return [("target", "— (not recorded)")]
    names = target.get("namespaces")
    return [("project", f'<code id="target-project">{_e(target.get("project"))}</code>'),
            ("database", _e(target.get("database") or "(default)")),
            ("namespaces", "every namespace" if names is None
             else ", ".join(f"<code>{_e(n)}</code>" for n in names)),
            ("emulator", f'<code id="target-emulator">{_e(target["emulator_host"])}</code>'
             if target.get("emulator_host") else "— (the Datastore service)")]


def versions_rows(versions: Optional[dict]) -> list:
    """[label, HTML]: one row per package (this tool, Beam, Python)."""
    return [(name, f'<code class="version" data-package="{_e(name)}">{_e(v)}</code>')
            for name, v in (versions or {}).items()] or [("versions", "— (not recorded)")]


#: Files listed one by one; beyond, a directory of more than FILES_PER_DIR files is one row
#: (a writing run's undo log has a file per slice), every file still in a closed list.
FILES_SHOWN = 25
FILES_PER_DIR = 5


def _size_cell(name: str, size: Optional[int]) -> str:
    shown = ("this file" if size is None and name.rsplit("/", 1)[-1] == "report.html"
             else size_text(size))
    return (f'<td class="file-size" data-bytes="{"" if size is None else size}">'
            f"{_e(shown)}</td>")


def grouped(files: list, sizes: dict) -> list:
    """[name, files, bytes] rows: a directory of more than FILES_PER_DIR files as one row
    (``dir/``), in the order of its first file; the other files one row each."""
    per_dir: dict = {}
    for name in files:
        per_dir.setdefault(name.rpartition("/")[0], []).append(name)
    rows, done = [], set()
    for name in files:
        d = name.rpartition("/")[0]
        if len(per_dir[d]) <= FILES_PER_DIR:
            rows.append([name, 1, sizes.get(name)])
        elif d not in done:
            done.add(d)
            rows.append([d + "/", len(per_dir[d]), sum(sizes.get(n) or 0 for n in per_dir[d])])
    return rows


def files_table(files: Optional[list], sizes: Optional[dict]) -> str:
    """The run's files (relative to OUTPUT/JOB) and their sizes (report.html: this file);
    many files are shown by directory, each file in a list that opens."""
    if not files:
        return '<p class="files none">no files (the run had no --output)</p>'
    sizes = sizes or {}
    rows = "".join(f'<tr><td class="file-name"><code>{_e(n)}</code></td>'
                   f"{_size_cell(n, sizes.get(n))}</tr>" for n in files)
    listed = set(files)
    total = sum(v for n, v in sizes.items() if n in listed)
    head = "<thead><tr><th>file (under OUTPUT/JOB)</th><th>size</th></tr></thead>"
    foot = (f"<tfoot><tr><td>{len(files)} files</td><td>{_e(size_text(total))}</td></tr>"
            "</tfoot>")
    every = f'<table class="files">{head}<tbody>{rows}</tbody>{foot}</table>'
    if len(files) <= FILES_SHOWN:
        return every
    short = "".join(
        f"<tr><td><code>{_e(n)}</code>"
        + (f" ({c:,} files)</td><td>{_e(size_text(b))}</td>" if c > 1
           else f"</td>{_size_cell(n, b)}") + "</tr>"
        for n, c, b in grouped(files, sizes))
    return (f'<table class="files-grouped">{head}<tbody>{short}</tbody>{foot}</table>\n'
            f"<details><summary>every file ({len(files):,})</summary>{every}</details>")


def about_section(s: dict) -> str:
    """Parameters, target, command line, versions and files, as one section."""
    command = s.get("command_line")
    cmd = (f'<pre id="command-line"><code>{_e(command)}</code></pre>' if command else
           '<p id="command-line" class="note">— (not launched from the command line)</p>')
    return ('<h2 id="about">About this run</h2>\n<div class="about-grid">'
            f'<div><h3>Parameters</h3>\n{params_table(s.get("params") or {})}</div>\n'
            f'<div><h3>Target</h3>\n{_rows(target_rows(s.get("target")), "target")}</div>\n'
            f'<div><h3>Versions</h3>\n{_rows(versions_rows(s.get("versions")), "versions")}'
            f'</div></div>\n<h3>Command line</h3>\n{cmd}\n'
            '<p class="note">As run; secrets (keys, tokens) are redacted as in the logs.</p>\n'
            f'<h3>Output files</h3>\n{files_table(s.get("files"), s.get("file_bytes"))}')
