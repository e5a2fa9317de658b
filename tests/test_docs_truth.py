"""The documentation says what the notebooks and the code really do (issue 19).

- every line INSTRUCTORS.md or README.md quotes as notebook output is in the committed outputs;
- the number of check-mark lines the instructors are told to expect is the number the solutions print;
- every run time the docs quote is the one ``tools/measure_times.py`` measured (``docs/run_times.md``);
- the Gram matrix and the loss weights are written the same way in the docs, the notebooks and the code.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
INSTRUCTORS = (ROOT / "INSTRUCTORS.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}

spec = importlib.util.spec_from_file_location("measure_times", ROOT / "tools" / "measure_times.py")
measure_times = importlib.util.module_from_spec(spec)
spec.loader.exec_module(measure_times)


def _notebook(folder: str, step: int) -> Path:
    (path,) = sorted((ROOT / folder).glob(f"0{step}_*.ipynb"))
    return path


def _outputs(path: Path) -> str:
    """All text the committed notebook printed (streams and plain-text results), one string."""
    texts = []
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                texts.append(output.get("text", ""))
            elif "text/plain" in output.get("data", {}):
                texts.append(output["data"]["text/plain"])
    return "\n".join(texts)


def _see_table() -> dict[int, tuple[str, str]]:
    """INSTRUCTORS.md's "what learners should see" table: {step: (lesson column, exercise column)}."""
    start = INSTRUCTORS.index("| step | lesson: what learners should see | exercise: done when |")
    rows = {}
    for line in INSTRUCTORS[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows[int(cells[0])] = (cells[1], cells[2])
    return rows


def test_the_table_covers_every_step():
    assert sorted(_see_table()) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("step", [1, 2, 3, 4, 5])
def test_quoted_lesson_output_is_in_the_committed_outputs(step):
    lesson, _ = _see_table()[step]
    quotes = re.findall(r'"([^"]+)"', lesson)
    assert quotes, f"step {step}: the row quotes no output to look for"
    printed = _outputs(_notebook("notebooks", step))
    missing = [q for q in quotes if q not in printed]
    assert not missing, f"INSTRUCTORS.md quotes {missing} for notebook 0{step}, which does not print it"


@pytest.mark.parametrize("step", [1, 2, 3, 4, 5])
def test_check_mark_lines_the_instructors_expect(step):
    _, exercise = _see_table()[step]
    match = re.search(r"\b(one|two|three|four|five|six) ✓ lines?\b", exercise)
    assert match, f"step {step}: say how many ✓ lines the exercise prints ('two ✓ lines (...)')"
    printed = _outputs(_notebook("solutions", step))
    passes = [line for line in printed.splitlines() if line.startswith("\u2705")]
    assert len(passes) == NUMBERS[match[1]], f"solutions/0{step} prints {len(passes)} ✓ lines: {passes}"


def test_not_implemented_message_is_what_a_check_prints(capsys):
    from pconv_lib import checks

    def stub(*args):
        raise NotImplementedError

    checks.check_hole_ratio(stub)
    printed = capsys.readouterr().out
    for doc in (INSTRUCTORS, README):
        for quote in re.findall(r'"(not implemented[^"]*)"', doc):
            assert quote in printed


def test_first_cell_line_is_what_describe_mode_prints_on_a_laptop(monkeypatch):
    from pconv_lib import runtime

    (quoted,) = re.findall(r"Every notebook's first cell prints `([^`]+?)(?:\.\.\.)?`", INSTRUCTORS)
    for variable in ("CI", "PCONV_QUICK", "PCONV_FULL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.describe_mode().startswith(quoted.strip())


# ---- run times: one script measures them, the docs quote its table -----------------------------


def _measured() -> dict[str, dict[str, int | None]]:
    conditions, rows = measure_times.read_table()
    assert conditions.startswith("Measured"), "docs/run_times.md is missing: run tools/measure_times.py"
    return rows


def test_run_time_table_is_written_by_the_script():
    text = (ROOT / "docs" / "run_times.md").read_text(encoding="utf-8")
    assert text.startswith(measure_times.HEADER)
    rows = _measured()
    for step in range(1, 6):
        name = _notebook("notebooks", step).stem
        assert name in rows and None not in rows[name].values(), f"{name}: run tools/measure_times.py"


def test_readme_course_map_quotes_the_measured_lesson_times():
    rows = _measured()
    quoted = dict(re.findall(r"(?m)^\| ([1-9]) \| \[0\d_.*\| ~(\d+) s \|$", README))
    assert sorted(quoted) == ["1", "2", "3", "4", "5"], "README's course map lost its run-time column"
    for step, seconds in quoted.items():
        name = _notebook("notebooks", int(step)).stem
        assert name in rows, f"docs/run_times.md has no row for {name}: run tools/measure_times.py"
        assert int(seconds) == rows[name]["lesson"], (
            f"README quotes ~{seconds} s for {name}, docs/run_times.md says {rows[name]['lesson']} s: "
            "run tools/measure_times.py --docs-only")


def test_instructors_schedule_quotes_the_measured_times():
    rows = _measured()
    schedule = re.findall(r"(?m)^\| \d\d:\d\d \| .*\*\*step ([1-9]),.*\| (lesson \d+ s.*solution \d+ s) \|$",
                          INSTRUCTORS)
    assert [int(step) for step, _ in schedule] == [1, 2, 3, 4, 5]
    for step, cell in schedule:
        name = _notebook("notebooks", int(step)).stem
        assert name in rows, f"docs/run_times.md has no row for {name}: run tools/measure_times.py"
        lesson, solution = (int(v) for v in re.findall(r"(?:lesson|solution) (\d+) s", cell))
        assert (lesson, solution) == (rows[name]["lesson"], rows[name]["solution"]), (
            f"INSTRUCTORS.md quotes lesson {lesson} s, solution {solution} s for {name}; docs/run_times.md "
            f"says {rows[name]}: run tools/measure_times.py --docs-only")
    (doctor,) = re.findall(r"doctor: ~(\d+) s", INSTRUCTORS)
    assert "doctor" in rows and int(doctor) == rows["doctor"]["lesson"]


def test_no_other_run_time_is_quoted_for_a_notebook():
    """The measured numbers are the only run times of single notebooks in the two docs."""
    for doc in (README, INSTRUCTORS):
        for line in doc.splitlines():
            if re.search(r"\blesson \d+ s\b|\bsolution \d+ s\b|~\d+ s \|$", line):
                assert line.startswith("|"), f"a run time outside the tables the script maintains: {line}"


def test_update_docs_rewrites_the_quoted_numbers(tmp_path, monkeypatch):
    readme, instructors = tmp_path / "README.md", tmp_path / "INSTRUCTORS.md"
    readme.write_text(README, encoding="utf-8")
    instructors.write_text(INSTRUCTORS, encoding="utf-8")
    monkeypatch.setattr(measure_times, "README", readme)
    monkeypatch.setattr(measure_times, "INSTRUCTORS", instructors)
    rows = {_notebook("notebooks", s).stem: {"lesson": 100 + s, "solution": 200 + s} for s in range(1, 6)}
    rows["doctor"] = {"lesson": 77, "solution": None}
    assert measure_times.update_docs(rows) == ["README.md", "INSTRUCTORS.md"]
    assert "| ~103 s |" in readme.read_text(encoding="utf-8")
    text = instructors.read_text(encoding="utf-8")
    assert "lesson 105 s" in text and "solution 201 s" in text and "doctor: ~77 s" in text
    table = tmp_path / "run_times.md"
    measure_times.write_table("Measured today", rows, table)
    assert measure_times.read_table(table) == ("Measured today", rows)


# ---- formulas: docs, notebooks and code agree ----------------------------------------------------

GRAM_FFT = re.compile(r"F ?F(?:ᵀ|\^T|\^\{?\\top\}?)")
GRAM_FTF = re.compile(r"F(?:ᵀ|\^T|\^\{?\\top\}?) ?F\b")


def _markdown(path: Path) -> str:
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")


def test_gram_matrix_is_f_f_transpose_everywhere():
    from pconv_lib import checks, losses

    sources = {
        "docs/DESIGN.md": (ROOT / "docs" / "DESIGN.md").read_text(encoding="utf-8"),
        "notebooks/04 (markdown)": _markdown(_notebook("notebooks", 4)),
        "pconv_lib/losses.py gram_matrix": losses.gram_matrix.__doc__,
        "pconv_lib/checks.py check_gram_matrix": checks.check_gram_matrix.__doc__,
    }
    for where, text in sources.items():
        assert GRAM_FFT.search(text), f"{where} does not write the Gram matrix as F Fᵀ / (C·H·W)"
        assert re.search(r"C ?·? ?H ?·? ?W", text), f"{where}: the normalisation C·H·W is missing"
    for where in ("docs/DESIGN.md", "notebooks/04 (markdown)", "pconv_lib/losses.py gram_matrix"):
        assert not GRAM_FTF.search(sources[where]), f"{where} writes FᵀF, the code computes F Fᵀ"
    exercise = _markdown(_notebook("solutions", 4))
    assert not GRAM_FTF.search(exercise)
    # and the code computes it: F is one image's (C, H·W) matrix
    features = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    flat = features.reshape(2, 3, 20)
    assert torch.allclose(losses.gram_matrix(features), flat @ flat.transpose(1, 2) / 60)


def test_loss_weights_agree_across_docs_notebook_and_code():
    from pconv_lib import losses

    weights = losses.LossWeights.paper()
    assert (weights.valid, weights.hole, weights.perceptual, weights.style_out, weights.style_comp,
            weights.tv) == (1.0, 6.0, 0.05, 120.0, 120.0, 0.1)
    design = (ROOT / "docs" / "DESIGN.md").read_text(encoding="utf-8")
    paper = "L = L_valid + 6 L_hole + 0.05 L_perceptual + 120 (L_style_out + L_style_comp) + 0.1 L_tv"
    assert paper in design
    exercise = _markdown(_notebook("solutions", 4))
    assert (r"L = 1\,L_{valid} + 6\,L_{hole} + 0.05\,L_{perceptual} + 120\,(L_{style,out} + "
            r"L_{style,comp}) + 0.1\,L_{tv}") in exercise


def test_error_messages_the_readme_quotes_are_the_librarys():
    """README's troubleshooting quotes error messages: each is what the library really says."""
    import numpy as np

    from pconv_lib import masks
    from pconv_lib.model import PConvUNet

    raised = []
    mask = np.full((8, 8), 255, np.uint8)
    mask[:2, :2] = 0
    for call in (lambda: masks.hole_ratio(mask),
                 lambda: PConvUNet(depth=7, width=0.125).eval()(torch.zeros(1, 3, 300, 256),
                                                                torch.ones(1, 1, 300, 256))):
        with pytest.raises(ValueError) as caught:
            call()
        raised.append(str(caught.value))
    quoted = [q.replace("\\*", "*") for q in re.findall(r'^- \*\*"([^"]+)"\*\*', README, re.M)]
    library = [q for q in quoted if "binary with" in q or "is not a multiple of" in q]
    assert len(library) == 2, quoted
    for quote in library:
        assert any(quote in message for message in raised), f"README quotes {quote!r}; the library: {raised}"


# ---- paths that work where the learner is ------------------------------------------------------


def _find_checkpoint():
    """notebook 05's find_checkpoint, taken from the committed cell and defined here."""
    cell = next(c.source for c in nbformat.read(_notebook("notebooks", 5), as_version=4).cells
                if c.cell_type == "code" and "def find_checkpoint" in c.source)
    source = cell[cell.index("def find_checkpoint"):cell.index("\n\n\n", cell.index("def find_checkpoint"))]
    namespace = {"Path": Path}
    exec(source, namespace)
    return namespace["find_checkpoint"]


def test_notebook_05_finds_a_checkpoint_from_notebooks_or_the_repository_root(tmp_path, monkeypatch):
    find_checkpoint = _find_checkpoint()
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "runs" / "mine").mkdir(parents=True)
    (tmp_path / "runs" / "mine" / "best.pt").write_bytes(b"")
    monkeypatch.chdir(tmp_path / "notebooks")  # where Jupyter runs the notebook
    assert find_checkpoint("demo") == "demo"
    assert Path(find_checkpoint("runs/mine/best.pt")) == tmp_path / "runs" / "mine" / "best.pt"
    with pytest.raises(FileNotFoundError) as caught:
        find_checkpoint("runs/other/best.pt")
    message = str(caught.value)
    assert "\n" not in message and f"working directory {tmp_path / 'notebooks'}" in message
    assert str(tmp_path / "notebooks" / "runs/other/best.pt") in message
    assert str(tmp_path / "runs/other/best.pt") in message


def _plain_formula(text: str) -> str:
    """LaTeX and Unicode spellings of the partial-convolution formula reduced to one plain form."""
    for old, new in [(r"\mathrm{sum}", "sum"), (r"\mathbf{1}", "1"), (r"\mathbf{M}", "M"),
                     (r"\mathbf{X}", "X"), (r"\mathbf{W}", "W"), (r"\odot", "*"), ("⊙", "*"), ("·", "*"),
                     (r"\,", " "), (r"\dfrac{sum(1)}{sum(M)}", "* sum(1)/sum(M)"),
                     (r"\frac{sum(1)}{sum(M)}", "* sum(1)/sum(M)")]:
        text = text.replace(old, new)
    return " ".join(text.split()).replace(" / ", "/")


def test_partial_convolution_formula_agrees_across_docs_notebook_and_code():
    from pconv_lib import layers

    formula = "W^T (X * M) * sum(1)/sum(M) + b"
    sources = {
        "docs/DESIGN.md": (ROOT / "docs" / "DESIGN.md").read_text(encoding="utf-8"),
        "pconv_lib/layers.py": layers.__doc__,
        "notebooks/02 (markdown)": _markdown(_notebook("notebooks", 2)),
        "solutions/02 (markdown)": _markdown(_notebook("solutions", 2)),
    }
    for where, text in sources.items():
        assert formula in _plain_formula(text), f"{where} does not write x' = {formula}"


# ---- every number in a notebook's prose is printed, set by its code, or listed with a reason -----
#
# Issue 26: prose that contradicted the outputs (800 steps for a 600-step run, "years on a CPU" two
# cells after 49 printed days). A number in a notebook's markdown (after removing code spans,
# formulas, links and tags) must be one of:
#   A. printed: in a text output of the same notebook, exactly or as its rounding to the prose's
#      decimals ("8 hours" for 7.9 h, "33 million" for 32,859,796);
#   B. set by the code: a literal in one of the notebook's code cells (a parameter the prose names);
#   C. not a quantity, by its place: a reference ("step 4", "notebook 03", "section 6", "rows
#      9–15"), a list or heading number, a citation year or arXiv id, the study-time estimate of the
#      "**Time:**" sentence;
#   D. computed here (NUMBERS_COMPUTED): a library constant, an image size, a parameter count or
#      the arithmetic of numbers shown next to it, recomputed by the test;
#   E. quoted from the paper or the original course (NUMBERS_QUOTED), each with its source.
# Whatever is in none of these fails the test, so new prose needs a printed number or a reason.

_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?e-?\d+|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:_\d{3})*(?:\.\d+)?)"
                     r"(?![\w])")
_SCALE = re.compile(r"\s?(million|M\b|thousand|k\b)")
_REFERENCE = re.compile(r"(?:\b(?:steps?|notebooks?|sections?|exercises?|equations?|parts?|rows?|issues?|"
                        r"versions?|levels?)\s(?:\d+(?:,\s|\s?[–-]\s?|\sand\s|\sor\s))*"
                        r"|\barXiv\s|\bet al\.,\s|\(\w+,\s)$", re.I)


def _prose(markdown: str) -> str:
    """Markdown without fenced and inline code, formulas, link targets, URLs and HTML tags."""
    for pattern in (r"```.*?```", r"\$\$.*?\$\$", r"\$[^$]*\$", r"`[^`]*`", r"\]\([^)]*\)", r"https?://\S+",
                    r"<[^>]+>"):
        markdown = re.sub(pattern, " ", markdown, flags=re.S)
    return markdown


def _value(token: str) -> float:
    return float(token.replace(",", "").replace("_", ""))


def _numbers_in(text: str) -> set[float]:
    return {_value(m[1]) for m in _NUMBER.finditer(text)}


def _is_structural(prose: str, match: re.Match) -> bool:
    """Class C: a reference, a list or heading number, a year or arXiv id, the study time."""
    before = prose[: match.start()]
    line = before[before.rfind("\n") + 1:]
    if _REFERENCE.search(before[-40:]) or re.fullmatch(r"\s*(#+\s*|[-*]\s*)?", line) and (
            prose[match.end(): match.end() + 1] in (".", ")")):
        return True
    sentence = before[before.rfind(".", 0, max(0, len(before) - 3)) + 1:]
    return "**Time:**" in line + sentence[-40:] and "minute" in prose[match.end(): match.end() + 12]


def _printed(value: float, token: str, scale: str, about: bool, printed: set[float]) -> bool:
    """Class A: printed exactly, or rounded to the prose's decimals (and unit). A whole number
    stands for a rounded one only with a unit ("33 million") or a word that says so ("about 8")."""
    decimals = len(token.split(".")[1]) if "." in token and "e" not in token else 0
    factor = {"million": 1e6, "M": 1e6, "thousand": 1e3, "k": 1e3}.get(scale, 1.0)
    if value in printed:
        return True
    if decimals == 0 and not scale and not about:
        return False
    return any(round(v / factor, decimals) == value for v in printed if v >= 0)


def _computed() -> dict[tuple[str, str], tuple[str, set[float]]]:
    """Class D: {(notebook stem, number as written): (what it is, the values the test computes)}."""
    import inspect

    import skimage.data

    from pconv_lib import losses, masks, model, tiling

    sizes = [(7, 0.5), (5, 0.25), (7, 0.125)]
    params = {(d, w): model.count_parameters(model.PConvUNet(depth=d, width=w)) for d, w in sizes}
    paper = model.architecture(7, 1.0)
    edges = {edge for bucket in masks.HOLE_RATIO_BUCKETS for edge in bucket}
    percents = {round(100 * edge) for edge in edges}
    grid = {top for top, _ in tiling.tile_grid(300, 224, 128, 32)} | {left for _, left in tiling.tile_grid(
        300, 224, 128, 32)}
    max_strokes = inspect.signature(masks.random_irregular_mask).parameters["max_strokes"].default
    return {
        ("02_partial_conv", "81"): ("the 9×9 box blur's window, 9·9", {9 * 9}),
        ("02_partial_conv", "512"): ("the paper's widest layer (architecture(7, 1))",
                                     {max(layer.out_channels for layer in paper)}),
        ("03_pconv_unet", "1024"): ("the widest decoder level's input, 512 + 512 (architecture(7, 1))",
                                    {max(layer.in_channels for layer in paper)}),
        ("03_pconv_unet", "49"): ("a 7×7 window, 7·7", {7 * 7}),
        ("03_pconv_unet", "127.5"): ("mid-grey, 255 / 2", {255 / 2}),
        ("03_pconv_unet", "0.73"): ("count_parameters(PConvUNet(5, 0.25)) in millions",
                                    {round(params[5, 0.25] / 1e6, 2)}),
        ("03_pconv_unet", "6.45"): ("count_parameters(PConvUNet(7, 0.5)) in millions (the demo model)",
                                    {round(params[7, 0.5] / 1e6, 2)}),
        ("03_pconv_unet", "400"): ("count_parameters(PConvUNet(7, 0.125)) in thousands",
                                   {round(params[7, 0.125] / 1e3, -2)}),
        ("03_pconv_unet", "10"): ("a hole-ratio bucket edge (HOLE_RATIO_BUCKETS), in %", percents),
        ("03_pconv_unet", "40"): ("a hole-ratio bucket edge (HOLE_RATIO_BUCKETS), in %", percents),
        ("02_partial_conv", "30"): ("a hole-ratio bucket edge (HOLE_RATIO_BUCKETS), in %", percents),
        ("02_partial_conv", "40"): ("a hole-ratio bucket edge (HOLE_RATIO_BUCKETS), in %", percents),
        ("02_partial_conv", "6e-8"): ("float16's smallest positive number, 2**-24, to one digit",
                                      {float(f"{2.0 ** -24:.0e}")}),
        ("01_masks", "20"): ("random_irregular_mask's max_strokes default", {max_strokes}),
        ("01_masks", "0.01"): ("a bucket edge (HOLE_RATIO_BUCKETS)", edges),
        ("01_masks", "0.5"): ("a bucket edge (HOLE_RATIO_BUCKETS)", edges),
        ("01_masks", "0.6"): ("a bucket edge (HOLE_RATIO_BUCKETS)", edges),
        ("02_partial_conv", "65504"): ("torch.finfo(torch.float16).max", {torch.finfo(torch.float16).max}),
        ("04_training", "786432"): ("the values of a 512×512 colour image, 512·512·3", {512 * 512 * 3}),
        ("04_training", "512"): ("the side of that image, (786432 / 3) ** 0.5", {(786432 / 3) ** 0.5}),
        ("04_training", "120"): ("the paper's style weight (LossWeights.paper())",
                                 {losses.LossWeights.paper().style_out}),
        ("05_tiled_prediction", "451"): ("skimage.data.chelsea()'s width", {skimage.data.chelsea().shape[1]}),
        ("05_tiled_prediction", "1411"): ("skimage.data.retina()'s size",
                                          set(skimage.data.retina().shape[:2])),
        ("05_tiled_prediction", "172"): ("tile_grid's starts for a side of 300 (tile 128, overlap 32)", grid),
        ("05_tiled_prediction", "96"): ("tile_grid's step for tile 128, overlap 32, and a start", grid),
        ("05_tiled_prediction", "300"): ("the example side whose last start is 300 - 128 = 172", {172 + 128}),
        ("05_tiled_prediction", "224"): ("the side whose grid is regular: 128 + 96", {128 + 96}),
    }


#: Class E: numbers quoted from the paper or the original course: {(stem, number): source}.
NUMBERS_QUOTED = {
    ("05_tiled_prediction", "127.0"): "the loopback address 127.0.0.1 the web app listens on (an address)",
    ("04_training", "100"): "the paper (Liu et al. 2018, section 4.2): the weights were searched on 100 "
                            "validation images",
    ("04_training", "1080"): "the GPU the original course trained on (a model name, GTX 1080 Ti)",
    ("05_tiled_prediction", "99"): "tiling.RADIUS_FRACTION's docstring: 99 % of training hole pixels lie "
                                   "within that radius",
}

def _unbacked_numbers(path: Path, computed: dict) -> list[tuple[str, str]]:
    """(number as written, its context) for every number of the notebook's prose in no class A-E."""
    notebook = nbformat.read(path, as_version=4)
    printed = _numbers_in(_outputs(path))
    code = _numbers_in("\n".join(c.source for c in notebook.cells if c.cell_type == "code"))
    unbacked = []
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        prose = _prose(cell.source)
        for match in _NUMBER.finditer(prose):
            token, value = match[1].replace(",", "").replace("_", ""), _value(match[1])
            scale = _SCALE.match(prose, match.end())
            key = (path.stem, token)
            about = bool(re.search(r"(?:about|around|roughly|~|≈)\s?$", prose[: match.start()]))
            if (_printed(value, token, scale[1] if scale else "", about, printed) or value in code
                    or _is_structural(prose, match) or key in NUMBERS_QUOTED
                    or (key in computed and value in computed[key][1])):
                continue
            context = " ".join(prose[max(0, match.start() - 50): match.end() + 30].split())
            unbacked.append((token, context))
    return unbacked


_NOTEBOOKS = [(folder, step) for folder in ("notebooks", "solutions") for step in range(1, 6)]


@pytest.mark.parametrize("folder, step", _NOTEBOOKS, ids=[f"{f}-0{s}" for f, s in _NOTEBOOKS])
def test_every_number_in_notebook_prose_is_printed_or_explained(folder, step):
    path = _notebook(folder, step)
    unbacked = _unbacked_numbers(path, _computed())
    assert not unbacked, (
        f"{folder}/{path.name}: numbers in the prose that no output prints, no code cell sets and no "
        "list in tests/test_docs_truth.py explains:\n" + "\n".join(f"  {n}: ...{c}..." for n, c in unbacked))


def _computed_entries_are_right():
    wrong = []
    for (stem, number), (what, values) in _computed().items():
        if _value(number) not in values:
            wrong.append(f"{stem}: {number} is not {what} ({sorted(values)[:5]})")
    return wrong


def test_the_computed_numbers_are_what_the_library_computes():
    assert not _computed_entries_are_right()


# ---- the README's quoted ratios ---------------------------------------------------------------

_README_RATIO = re.compile(r"(\d+(?:\.\d+)?)(?:\s?[–-]\s?(\d+(?:\.\d+)?))?\s?(%|×)")


def _printed_ratios() -> tuple[set[float], set[float]]:
    """(percentages, ratios) the five lesson notebooks print: "12 %" and "1.29×" / "1.29x"."""
    text = "\n".join(_outputs(_notebook("notebooks", step)) for step in range(1, 6))
    percents = {float(m) for m in re.findall(r"(\d+(?:\.\d+)?)\s?%", text)}
    ratios = {float(m) for m in re.findall(r"(\d+(?:\.\d+)?)\s?(?:×|x\b)", text)}  # "×" has no \b after it
    return percents, ratios


def _readme_ratio_quotes() -> list[str]:
    return [m[0] for m in _README_RATIO.finditer(README)]


def _ratio_is_printed(quote: str) -> bool:
    """Each end of "5–9 %" is a printed percentage, or a printed ratio 1.05× (or 0.95×) rounded."""
    percents, ratios = _printed_ratios()
    match = _README_RATIO.fullmatch(quote)
    ends = [float(v) for v in match.groups()[:2] if v is not None]
    if match[3] == "×":
        return all(any(round(r, 2) == e for r in ratios) for e in ends)
    return all(e in percents or any(round(abs(r - 1) * 100) == e for r in ratios) for e in ends)


def test_the_readme_quotes_ratios():
    """The test below sees the README's ratios (if it quotes none, it would pass vacuously)."""
    assert _readme_ratio_quotes()


@pytest.mark.parametrize("quote", _readme_ratio_quotes())
def test_every_ratio_the_readme_quotes_is_printed_by_a_notebook(quote):
    assert _ratio_is_printed(quote), f"README quotes {quote}, which no lesson notebook prints"


def test_the_number_test_catches_issue_26s_contradictions(tmp_path):
    """Put back the prose issue 26 found: each number is flagged, and the real prose is not."""
    notebook = nbformat.read(_notebook("notebooks", 3), as_version=4)
    summary = next(c for c in notebook.cells if c.cell_type == "markdown" and "## Summary" in c.source)
    assert "600 steps" in summary.source
    summary.source = summary.source.replace("600 steps", "800 steps")
    summary.source += "\nThe partial convolution runs at 0.26–0.59× a plain convolution, in 57 days."
    nbformat.write(notebook, tmp_path / _notebook("notebooks", 3).name)
    flagged = {n for n, _ in _unbacked_numbers(tmp_path / _notebook("notebooks", 3).name, _computed())}
    assert {"800", "0.26", "0.59", "57"} <= flagged
    assert "600" not in flagged and "32859796" not in flagged
