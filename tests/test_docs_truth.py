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
