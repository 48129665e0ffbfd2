"""The run as a static website, read offline: `build_book` (``python -m cifarkit book RUN_DIR``).

Sphinx with MyST-NB (execution off) and sphinx-book-theme render the executed notebooks of a run;
nothing runs again. The landing page says what the course teaches, one line per notebook with its
verdict counts, and the case of the run (from ``summary.json``, the metrics and the executed
notebooks); each notebook page opens with its provenance, a launch bar (Colab, from the notebook's
own badge; the executed ``.ipynb``; its slides) and its verdict table. A synthetic-data run says so
on every page. The decks (`cifarkit.course.slides`) and the search come with the site.

Offline by construction: MathJax and reveal.js are copies from packages (sphinx-mathjax-offline,
sphinx-revealjs), widget state and web images are dropped, and `external_references` lists anything
a page would still load from outside the site. Only files inside the run directory are read.
"""
from __future__ import annotations

import ast
import html
import io
import json
import re
import shutil
import tempfile
import warnings as _py_warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .claims import VERDICTS, claims_markdown, md_cell
from .summary import DIFFERS, OK, SYNTHETIC_LABEL, data_source_label, joined, ran, read_summary, status_label

__all__ = ["build_book", "Book", "external_references", "colab_url", "run_case_rows", "default_out_dir"]

#: The file that marks a folder as a book written by `build_book` (so it may be replaced).
MARKER = ".cifarkit-book"

#: What the course teaches, for the landing page.
COURSE_TEXT = (
    "A CIFAR-10 course in narrative Jupyter notebooks that run real experiments: why a classifier "
    "must hand raw logits to its loss, freezing and pruning a ResNet, transfer learning with a "
    "frozen ResNet-152, a gated CNN, and how fast a laptop can train to 94%. Every notebook states "
    "its lesson as claims and judges each one on the run's own numbers, with their uncertainty, as "
    "`holds`, `does not hold`, `inconclusive` or `not testable here`."
)

_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$")
_COLAB = re.compile(r"https://colab\.research\.google\.com/[^\s)\"'<>\]]+")
_WEB_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*(?:https?:)?//[^)]*\)")
_LINKED_WEB_IMAGE = re.compile(r"\[!\[([^\]]*)\]\(\s*(?:https?:)?//[^)]*\)\]\(([^)]*)\)")
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_EXTERNAL = r"""(?:https?:)?//[^"'\s>)]+"""
_LOADS = [
    re.compile(r"<(?:script|img|iframe|source|audio|video|embed|track)\b[^>]*?\bsrc\s*=\s*[\"'](" + _EXTERNAL + ")",
               re.I),
    re.compile(r"<link\b[^>]*?\bhref\s*=\s*[\"'](" + _EXTERNAL + ")", re.I),
    re.compile(r"<object\b[^>]*?\bdata\s*=\s*[\"'](" + _EXTERNAL + ")", re.I),
    re.compile(r"@import\s+(?:url\()?\s*[\"']?(" + _EXTERNAL + ")", re.I),
    re.compile(r"url\(\s*[\"']?(" + _EXTERNAL + ")", re.I),
]

_CSS = """
.cifarkit-launch { display: flex; flex-wrap: wrap; gap: .5rem; margin: .5rem 0 1rem; }
.cifarkit-launch a { border: 1px solid var(--pst-color-border, #ccc); border-radius: .3rem;
  padding: .25rem .7rem; text-decoration: none; font-size: .9rem; }
.cifarkit-launch a.cifarkit-colab { background: #f9ab00; color: #222; border-color: #e8a000; }
.cifarkit-provenance { font-size: .9rem; color: var(--pst-color-text-muted, #555); }
.cifarkit-verdicts { border-left: .25rem solid var(--pst-color-primary, #369);
  padding: .3rem 0 .3rem .8rem; margin-bottom: 1.5rem; }
.cifarkit-verdicts table { font-size: .85rem; }
"""

_FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
            '<rect width="16" height="16" rx="3" fill="#369"/><path d="M4 4h8v8H4z" fill="#f9ab00"/></svg>')


@dataclass
class Book:
    """What `build_book` wrote: the site folder, its pages, Sphinx's warnings and the
    references in the pages that point outside the site (empty when it is offline)."""

    site: Path
    index: Path
    pages: list[Path]
    slides: list[Path]
    warnings: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)


@dataclass
class _Page:
    entry: Mapping[str, Any]  # the notebook's entry of summary.json
    path: Path                # the executed copy in the run directory
    nb: Any                   # that copy, read

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def title(self) -> str:
        first = _first_markdown(self.nb)
        for line in (first or "").splitlines():
            match = _HEADING.match(line.strip())
            if match:
                return match.group(1)
        return self.stem

    @property
    def blurb(self) -> str:
        """The first sentence of the notebook's prose (after its heading and badge)."""
        text = _strip_web_images(_first_markdown(self.nb) or "")
        for para in re.split(r"\n\s*\n", text):
            para = " ".join(para.split())
            if not para or para.startswith("#") or (para.startswith("[") and _COLAB.search(para)):
                continue  # the title, the Colab badge
            match = re.match(r"(.+?[.?!])(\s|$)", para)
            sentence = match.group(1) if match else para
            if len(sentence) > 200:
                sentence = sentence[:197]
                if sentence.count("$") % 2:  # never cut a formula in half
                    sentence = sentence[:sentence.rindex("$")]
                sentence = sentence.rstrip() + "..."
            return sentence
        return ""


# --------------------------------------------------------------------------
# Reading the run
# --------------------------------------------------------------------------

def default_out_dir(run_dir: str | Path) -> Path:
    """Where `cifarkit book RUN_DIR` writes without ``--out``: ``build/book/<run name>/``."""
    return Path("build") / "book" / Path(run_dir).resolve().name


def _first_markdown(nb: Any) -> str | None:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            return cell.source
    return None


def _strip_web_images(text: str) -> str:
    """Markdown with images linked from the web replaced by their text (a linked badge by a link)."""
    text = _LINKED_WEB_IMAGE.sub(lambda m: f"[{m.group(1) or 'link'}]({m.group(2)})", text)
    return _WEB_IMAGE.sub(lambda m: m.group(1), text)


def colab_url(nb: Any) -> str | None:
    """The "Open in Colab" URL of a notebook: the first one its first cell names, else None."""
    if not nb.cells:
        return None
    urls = [u for u in _COLAB.findall(nb.cells[0].source) if "/assets/" not in u]  # not the badge image
    return next((u for u in urls if u.endswith(".ipynb")), urls[0] if urls else None)


def _literal_assignments(source: str) -> dict[str, Any]:
    """``{name: value}`` of the plain ``name = <literal>`` lines of a parameters cell."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    out: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
    return out


def _parameters(nb: Any) -> dict[str, Any]:
    """The parameters the kernel saw: the ``parameters`` cell, then papermill's injected cell."""
    values: dict[str, Any] = {}
    for tag in ("parameters", "injected-parameters"):
        for cell in nb.cells:
            if cell.cell_type == "code" and tag in (cell.get("metadata", {}).get("tags") or []):
                values.update(_literal_assignments(cell.source))
    return values


def _initial_weights(claims: list[Mapping[str, Any]]) -> list[str]:
    """The starting weights named in the claims' case (``"<data>, <init>, <profile> profile"``)."""
    found = []
    for claim in claims:
        parts = str(claim.get("case") or "").rsplit(", ", 2)
        if len(parts) == 3 and parts[1] not in found:
            found.append(parts[1])
    return found


def _per_notebook(values: Mapping[str, list[str]], missing: str) -> str:
    """One value when all notebooks agree, else ``"a (01, 02); b (05)"``; `missing` when none."""
    by_value: dict[str, list[str]] = {}
    for stem, vals in values.items():
        for v in vals or [missing]:
            by_value.setdefault(v, []).append(stem.split("_", 1)[0])
    if not by_value:
        return missing
    if len(by_value) == 1:
        return next(iter(by_value))
    return "; ".join(f"{v} ({', '.join(stems)})" for v, stems in by_value.items())


def run_case_rows(summary: Mapping[str, Any], notebooks: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
    """The case of a run as ``(label, value)`` rows, read from ``summary.json`` (`summary`) and the
    executed notebooks (`notebooks`: ``{stem: notebook}``, for the seeds).

    The initial weights come from the claims' case, the torch version from the metrics files
    (``torch_version``, written by `cifarkit.course.results.record_results`); a value the run did not
    record says so.
    """
    notebooks = notebooks or {}
    nbs = summary["notebooks"]
    stems = {nb["name"]: Path(nb["name"]).stem for nb in nbs}
    weights = {stems[nb["name"]]: _initial_weights(nb.get("claims") or []) for nb in nbs}
    torch = {stems[nb["name"]]: [str((nb.get("metrics") or {}).get("torch_version"))]
             for nb in nbs if (nb.get("metrics") or {}).get("torch_version")}
    seeds: dict[str, list[str]] = {}
    for nb in nbs:
        stem = stems[nb["name"]]
        params = _parameters(notebooks[stem]) if stem in notebooks else {}
        params.update(nb.get("parameters") or {})
        if "seed" in params:
            seeds[stem] = [str(params["seed"])]
    n_ok = sum(1 for nb in nbs if ran(nb["status"]))
    return [
        ("Data source", md_cell(joined(summary["data_source"], data_source_label))),
        ("Initial weights", md_cell(_per_notebook(
            {k: v for k, v in weights.items() if v}, "not recorded (no notebook recorded claims)"))),
        ("Profile", md_cell(summary["profile"])),
        ("Hardware and precision", md_cell(joined(summary["device"]))
         + f" (precision {md_cell(joined(summary['precision']))})"),
        ("torch", md_cell(_per_notebook(torch, "not recorded by this run"))),
        ("Date", md_cell(summary["started_at"])),
        ("Seed", md_cell(_per_notebook(seeds, "not recorded by this run"))),
        ("Run", f"`{md_cell(summary.get('run_name') or '?')}`: {n_ok}/{len(nbs)} notebooks ran to the end "
                f"in {float(summary['duration_s']):.0f} s"),
    ]


def _read_run(run_dir: Path) -> tuple[dict[str, Any], list[_Page]]:
    from .slides import _executed_notebooks, _inside, _read_notebook

    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"RUN_DIR {str(run_dir)!r} is a file, not a run directory")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"RUN_DIR {str(run_dir)!r} does not exist")
    if not (run_dir / "summary.json").is_file():
        raise FileNotFoundError(f"RUN_DIR {str(run_dir)!r} has no summary.json; is it a run directory "
                                "made by `python -m cifarkit run`?")
    summary = read_summary(run_dir / "summary.json")
    by_name = {}
    for entry in summary["notebooks"]:
        if entry.get("executed"):
            by_name[_inside(run_dir, entry["executed"], f"executed notebook of {entry['name']}")] = entry
    pages = [_Page(by_name[path], path, _read_notebook(path)) for path in _executed_notebooks(run_dir, summary)]
    if not pages:
        raise ValueError(f"{run_dir / 'summary.json'}: names no executed notebook that is in the run "
                         "directory; nothing to put in a book")
    return summary, pages


# --------------------------------------------------------------------------
# The pages
# --------------------------------------------------------------------------

def _synthetic_warning(where: str) -> str:
    return (f":::{{warning}}\n**{SYNTHETIC_LABEL}.** {where} trained on the synthetic stand-in data, "
            "so its numbers say nothing about CIFAR-10 accuracy.\n:::\n")


def _uses_synthetic(entry: Mapping[str, Any], summary: Mapping[str, Any]) -> bool:
    source = (entry.get("metrics") or {}).get("data_source")
    return str(source).lower() == "synthetic" if source is not None else bool(summary.get("synthetic_data"))


def _provenance(page: _Page, summary: Mapping[str, Any]) -> str:
    entry, m = page.entry, page.entry.get("metrics") or {}
    params = _parameters(page.nb)
    params.update(entry.get("parameters") or {})
    bits = [f"Executed by `cifarkit run` on {summary['started_at']}",
            f"profile `{params.get('profile', summary['profile'])}`"]
    if "seed" in params:
        bits.append(f"seed {params['seed']}")
    bits.append(f"on {m.get('device') or joined(summary['device'])}")
    if m.get("torch_version"):
        bits.append(f"torch {m['torch_version']}")
    bits.append(f"data: {data_source_label(m.get('data_source')) if m else joined(summary['data_source'], data_source_label)}")
    status = {OK: "ran to the end", DIFFERS: "ran to the end, differing from the course under these settings"}.get(
        entry["status"], "FAILED")
    return f":::{{container}} cifarkit-provenance\n{'; '.join(bits)}. It {status} in {float(entry['duration_s']):.1f} s.\n:::\n"


def _launch_bar(page: _Page, slides: Mapping[str, str]) -> str:
    links = []
    url = colab_url(page.nb)
    if url:
        links.append(f'<a class="cifarkit-colab" href="{html.escape(url)}">Open in Colab</a>')
    links.append(f'<a class="cifarkit-download" href="notebooks/{html.escape(page.path.name)}" download>'
                 "Download the executed notebook (.ipynb)</a>")
    if page.stem in slides:
        links.append(f'<a class="cifarkit-slides" href="{html.escape(slides[page.stem])}">Slides</a>')
    return '<div class="cifarkit-launch">\n' + "\n".join(links) + "\n</div>\n"


def _verdicts(page: _Page) -> str:
    claims = page.entry.get("claims") or []
    lines = [":::{container} cifarkit-verdicts", "**What this run showed**", ""]
    if claims:
        lines += claims_markdown(claims)
    elif not ran(page.entry["status"]):
        error = md_cell(page.entry.get("error") or "no message").replace("`", "'")
        lines += [f"This notebook failed before it recorded its claims: `{error}`", ""]
    else:
        lines += ["_This notebook recorded no claims in this run._", ""]
    return "\n".join(lines).rstrip() + "\n:::\n"


def _page_notebook(page: _Page, summary: Mapping[str, Any], slides: Mapping[str, str]) -> Any:
    """A copy of the executed notebook with the header cells after its title; web images and
    widget state (both would load files from the network) removed."""
    import copy

    import nbformat

    nb = copy.deepcopy(page.nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = _strip_web_images(cell.source)
        for out in cell.get("outputs", []):
            if _WIDGET_MIME in (out.get("data") or {}):
                del out["data"][_WIDGET_MIME]
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", []) if o.get("output_type") not in
                            ("display_data", "execute_result") or o.get("data")]

    header = []
    if _uses_synthetic(page.entry, summary):
        header.append(_synthetic_warning("This notebook"))
    header += [_provenance(page, summary), _launch_bar(page, slides), _verdicts(page)]
    header_cell = nbformat.v4.new_markdown_cell("\n".join(header))

    # the title stays first (it names the page); the header follows it; a Colab badge line goes
    first = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), None)
    title_line, rest = f"# {page.stem}", ""
    if first is not None:
        lines = nb.cells[first].source.splitlines()
        heading = next((k for k, line in enumerate(lines) if line.strip()), None)
        if heading is not None and _HEADING.match(lines[heading].strip()):
            title_line = lines[heading].strip()
            rest = "\n".join(line for line in lines[heading + 1:]
                             if not (_COLAB.search(line) and line.strip().startswith("[")))
            nb.cells[first].source = rest
            if not rest.strip():
                del nb.cells[first]
        else:
            first = None
    insert_at = first if first is not None else 0
    nb.cells[insert_at:insert_at] = [nbformat.v4.new_markdown_cell(title_line), header_cell]
    return nb


def _landing(summary: Mapping[str, Any], pages: list[_Page], slides: Mapping[str, str]) -> str:
    by_notebook = {nb["name"]: nb for nb in summary["notebooks"]}
    lines = ["# The cifarkit course", ""]
    if summary.get("synthetic_data"):
        lines.append(_synthetic_warning("This run"))
    lines += [COURSE_TEXT, "",
              f"This book shows the run `{md_cell(summary.get('run_name') or '?')}` as it was executed: "
              "every output, figure and verdict below comes from that run; nothing was executed again.", "",
              "## The notebooks", "",
              "| Notebook | What it is about | Status | " + " | ".join(VERDICTS) + " |",
              "|---|---|---|" + "---:|" * len(VERDICTS)]
    from .claims import verdict_counts

    for page in pages:
        entry = by_notebook.get(page.entry["name"], page.entry)
        counts = verdict_counts(entry.get("claims") or [])
        title = re.sub(r"[`<>]", "", page.title)
        status = status_label(entry["status"])
        blurb = " ".join(page.blurb.split()).replace("|", "\\|")  # md_cell would break its math
        lines.append(f"| {{doc}}`{md_cell(title)} <{page.stem}>` | {blurb} | {status} | "
                     + " | ".join(str(counts[v]) if entry.get("claims") else "-" for v in VERDICTS) + " |")
    lines.append("")
    if slides:
        decks = [f'<a href="{html.escape(slides["overview"])}">the run\'s overview</a>'] if "overview" in slides else []
        decks += [f'<a href="{html.escape(href)}">{html.escape(stem.split("_", 1)[0])}</a>'
                  for stem, href in slides.items() if stem != "overview"]
        lines += ['<p class="cifarkit-slides-list">Slides (reveal.js): ' + ", ".join(decks) + ".</p>", ""]
    lines += ["## The case of this run", "", "| | This run |", "|---|---|"]
    lines += [f"| {label} | {value} |" for label, value in run_case_rows(summary, {p.stem: p.nb for p in pages})]
    lines += ["", "```{toctree}", ":hidden:", ":maxdepth: 1", ""] + [p.stem for p in pages] + ["```", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------

def _conf(title: str, extra: Path, static: Path) -> dict[str, Any]:
    return {
        "project": "cifarkit",
        "author": "cifarkit",
        "html_context": {"default_mode": "light"},  # the theme logs an error when it has no mode
        "html_favicon": str(static / "cifarkit-favicon.svg"),  # else the browser asks for /favicon.ico
        "html_title": title,
        "extensions": ["sphinx.ext.mathjax", "myst_nb", "sphinx-mathjax-offline"],
        "mathjax_path": "mathjax/tex-chtml.js",  # a packaged copy, never a CDN
        "myst_enable_extensions": ["dollarmath", "amsmath", "colon_fence"],
        "nb_execution_mode": "off",
        "nb_ipywidgets_js": {},  # widget state is dropped; never load the widget manager from a CDN
        "nb_merge_streams": True,
        "exclude_patterns": ["_build", "**.ipynb_checkpoints"],
        "html_theme": "sphinx_book_theme",
        "html_theme_options": {"home_page_in_toc": True, "use_download_button": False,
                               "show_toc_level": 2, "search_bar_text": "Search this book..."},
        "html_static_path": [str(static)],
        "html_css_files": ["cifarkit-book.css"],
        "html_extra_path": [str(extra)],
        "html_copy_source": False,
        "html_show_sourcelink": False,
        "html_show_sphinx": False,
        "suppress_warnings": ["myst.header", "mystnb.unknown_mime_type"],
    }


def _check_out(out: Path) -> None:
    """Refuse an `out` that is a file, or a non-empty folder that is not a book built before."""
    if out.exists():
        if not out.is_dir():
            raise NotADirectoryError(f"--out {str(out)!r} is a file, not a folder")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise FileExistsError(f"--out {str(out)!r} is not empty and holds no book written by "
                                  "`cifarkit book`; choose a new or empty folder")


#: nbconvert's reveal template with every network load replaced by a file of the site: reveal.js
#: from ``_static/revealjs`` (its "white" theme has local fonts), MathJax 3 from ``_static/mathjax``,
#: no jQuery, require.js, mermaid or widget manager (the decks need none of them); the site's icon.
_OFFLINE_DECK = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}<link rel="icon" href="../_static/cifarkit-favicon.svg">{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}
<script>window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], processEscapes: true}};</script>
<script defer src="../_static/mathjax/tex-chtml.js"></script>
{%- endblock html_head_js_mathjax -%}
{% block footer_js %}
{%- set prefix = resources.reveal.url_prefix -%}
<script src="{{ prefix }}/dist/reveal.js"></script>
<script src="{{ prefix }}/plugin/notes/notes.js"></script>
<script>
Reveal.initialize({controls: true, progress: true, history: true, plugins: [RevealNotes],
                   transition: "{{ resources.reveal.transition | default('slide', true) }}",
                   width: {{ resources.reveal.width | default('960', true) }},
                   height: {{ resources.reveal.height | default('700', true) }}});
function scrollTallSlides() {  // what nbconvert's reveal_scroll does, without jQuery
  var h = document.querySelector('.reveal').clientHeight * 0.95;
  document.querySelectorAll('section.present section').forEach(function (s) {
    if (s.scrollHeight > h) { s.style.height = '95vh'; s.style.overflowY = 'scroll'; s.style.marginTop = '20px'; }
  });
}
Reveal.on('ready', scrollTallSlides);
Reveal.on('slidechanged', scrollTallSlides);
</script>
{% endblock footer_js %}
"""

#: The files of the packaged reveal.js (sphinx-revealjs) that the offline decks load.
_REVEAL_FILES = ("dist/reveal.js", "dist/reveal.css", "dist/theme/white.css", "dist/theme/fonts/source-sans-pro",
                 "plugin/notes/notes.js", "LICENSE")


def _reveal_dir() -> Path:
    import sphinx_revealjs

    return Path(sphinx_revealjs.__file__).parent / "_static" / "revealjs"


def _web_image_stripper():
    """An nbconvert preprocessor: markdown cells lose the images they link from the web."""
    from nbconvert.preprocessors import Preprocessor

    class StripWebImages(Preprocessor):
        def preprocess_cell(self, cell, resources, index):
            if cell.cell_type == "markdown":
                cell.source = _strip_web_images(cell.source)
            return cell, resources

    return StripWebImages


def _slides(run_dir: Path, dest: Path, static: Path) -> dict[str, str]:
    """Build the run's decks into ``dest`` (``slides/`` of the site) with reveal.js copied into
    ``static/revealjs``; ``{stem: href}``."""
    from .slides import build_slides

    reveal = _reveal_dir()
    for name in _REVEAL_FILES:
        source, target = reveal / name, static / "revealjs" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, target)
    with tempfile.TemporaryDirectory(prefix="cifarkit-slides-") as tmp:
        template = Path(tmp) / "cifarkit_offline_deck.html.j2"
        template.write_text(_OFFLINE_DECK, encoding="utf-8")
        options = {"template_file": str(template), "reveal_theme": "white",
                   "preprocessors": [_web_image_stripper()]}
        paths = build_slides(run_dir, Path(tmp) / "decks", reveal_url_prefix="../_static/revealjs",
                             exporter_options=options)
        dest.mkdir(parents=True, exist_ok=True)
        out = {}
        for path in paths:
            shutil.move(str(path), dest / path.name)
            out[path.name.removesuffix(".slides.html")] = f"slides/{path.name}"
    return out


def _sphinx(src: Path, out: Path, work: Path, conf: Mapping[str, Any]) -> list[str]:
    from sphinx.application import Sphinx
    from sphinx.errors import SphinxError
    from sphinx.util.docutils import docutils_namespace, patch_docutils

    (src / "conf.py").write_text("".join(f"{k} = {v!r}\n" for k, v in conf.items()), encoding="utf-8")
    warnings = io.StringIO()
    try:
        with patch_docutils(src), docutils_namespace(), _py_warnings.catch_warnings():
            for category in (DeprecationWarning, PendingDeprecationWarning):  # the theme's: no use to a reader
                _py_warnings.simplefilter("ignore", category)
            app = Sphinx(str(src), str(src), str(out), str(work / "doctrees"), "html",
                         status=None, warning=warnings, freshenv=True)
            app.build(force_all=True)
    except SphinxError as exc:
        raise RuntimeError(f"the Sphinx build of the book failed: {' '.join(str(exc).split())}") from None
    return [line for line in warnings.getvalue().splitlines() if line.strip()]


def external_references(site: str | Path) -> list[str]:
    """``"<file>: <url>"`` for every script, image, frame, stylesheet, font or CSS import of the
    site's HTML and CSS files that would be loaded from outside the site (an http(s) or
    protocol-relative URL). Plain links (``<a href>``) are not loads and are not listed."""
    site = Path(site)
    found = []
    for path in sorted(site.rglob("*")):
        if path.suffix not in (".html", ".css") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        urls = [m.group(1) for pattern in (_LOADS if path.suffix == ".html" else _LOADS[3:])
                for m in pattern.finditer(text)]
        found += [f"{path.relative_to(site).as_posix()}: {url}" for url in dict.fromkeys(urls)]
    return found


def build_book(run_dir: str | Path, out_dir: str | Path | None = None) -> Book:
    """Build the static site of an executed run into `out_dir` (default `default_out_dir`).

    Reads ``summary.json`` and the executed notebooks of `run_dir`; executes nothing. Bad input
    raises ValueError/OSError with one line naming the argument or the file, before anything is
    written: `run_dir` missing, not a folder, without ``summary.json``, with a malformed one or
    with no executed notebook; `out_dir` a file, or a non-empty folder that is not a book written
    before. Returns a `Book`.
    """
    import nbformat

    run_dir = Path(run_dir)
    summary, pages = _read_run(run_dir)
    out = Path(out_dir) if out_dir is not None else default_out_dir(run_dir)
    if out.resolve() == run_dir.resolve() or run_dir.resolve() in out.resolve().parents:
        raise ValueError(f"--out {str(out)!r} is inside RUN_DIR {str(run_dir)!r}; a run is never written to")
    _check_out(out)

    with tempfile.TemporaryDirectory(prefix="cifarkit-book-") as tmp:
        work = Path(tmp)
        src, extra, static = work / "src", work / "extra", work / "static"
        for folder in (src, extra / "notebooks", static):
            folder.mkdir(parents=True)
        (static / "cifarkit-book.css").write_text(_CSS.lstrip(), encoding="utf-8")
        (static / "cifarkit-favicon.svg").write_text(_FAVICON, encoding="utf-8")
        slides = _slides(run_dir, extra / "slides", static)
        for page in pages:
            shutil.copyfile(page.path, extra / "notebooks" / page.path.name)
            nbformat.write(_page_notebook(page, summary, slides), str(src / f"{page.stem}.ipynb"))
        (src / "index.md").write_text(_landing(summary, pages, slides), encoding="utf-8")
        title = f"cifarkit: {summary.get('run_name') or run_dir.name}"
        # built in the temporary folder (MyST-NB writes beside the output folder), then moved
        built = work / "site" / "html"
        warnings = _sphinx(src, built, work, _conf(title, extra, static))
        if (built / "_sources").is_dir() and not any((built / "_sources").iterdir()):
            (built / "_sources").rmdir()  # html_copy_source is off: Sphinx leaves the folder empty
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(built), str(out))
    (out / MARKER).write_text(json.dumps({"run_dir": str(run_dir.resolve())}) + "\n", encoding="utf-8")
    return Book(site=out, index=out / "index.html", pages=[out / f"{p.stem}.html" for p in pages],
                slides=sorted((out / "slides").glob("*.html")), warnings=warnings,
                external=external_references(out))
