"""Every Python block of README.md and docs/ runs, and the pages keep their shape.

The blocks are executed as written except for ``HUB_IDS`` and ``RUNS``: hub model ids become tiny
random checkpoints built offline, and the trained run the pages load is one shortened smoke run,
trained once for the module. Each block runs in a fresh namespace inside an empty folder, so
files it writes land there. The generated ``docs/quality/<task>/results.md`` pages are not
hand-written and are not read here.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted(p for p in (REPO / "docs").rglob("*.md") if p.name != "results.md")]
WRITTEN = [*PAGES, REPO / "CHANGELOG.md"]  # hand-written pages: links and wording checked
FENCE = re.compile(r"^```(\S*)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
# hub id in a block -> the tiny encoder kind (tests/conftest.py `tiny_dir`) it becomes
HUB_IDS = {
    "bert-base-uncased": "bert",
    "t5-small": "t5",
    "google/vit-base-patch16-224": "vit",
}
RUNS = ("runs/smoke/final", "runs/smoke")  # the folders of a trained run the pages load
# Page titles that must be there: the landing page links to each.
DOCS = ("attention", "models", "modalities", "training", "sampling", "benchmarks", "compat")
MAX_README_LINES = 200
# Words that narrate how a page came to be instead of saying what is true.
HISTORY = re.compile(
    r"\b(session|previous quickstart|earlier run|issue \d+|commit [0-9a-f]{7,40})\b", re.I
)


def name(page: Path) -> str:
    return page.relative_to(REPO).as_posix()


def fenced_blocks(page: Path) -> list[tuple[str, str]]:
    """(language, code) of every fenced block of a page, in order."""
    return FENCE.findall(page.read_text(encoding="utf-8"))


def python_blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in PAGES:
        blocks = [code for lang, code in fenced_blocks(page) if lang == "python"]
        found += [(name(page), i, code) for i, code in enumerate(blocks)]
    return found


BLOCKS = python_blocks()


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    """A shortened smoke run, trained once through the CLI: the run folder the pages load."""
    from qgfd_diffusion.cli import main

    out = tmp_path_factory.mktemp("pages") / "smoke"
    shorter = ["phases.0.steps=3", "phases.1.steps=3", "phases.0.fit_steps=2"]
    argv = ["train", str(REPO / "configs" / "smoke.yaml"), "--output-dir", str(out)]
    argv += [part for value in shorter for part in ("--set", value)]
    assert main([*argv, "--no-progress"]) == 0
    return out


def test_readme_is_a_landing_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES
    # .ci/run greps the test command from the README's first lines: keep them the two commands
    assert lines[2] == "```bash" and lines[5] == "```"
    assert lines[3].startswith("pip install ") and "qgfd train configs/quickstart.yaml" in lines[3]
    assert lines[4].startswith("pip install ") and "python -m pytest" in lines[4]
    text = "\n".join(lines)
    for page in DOCS:
        assert f"(docs/{page}.md)" in text, f"README does not link docs/{page}.md"


def test_every_block_names_its_language():
    """An unlabelled fence would hide a Python block from the tests below."""
    for page in PAGES:
        unlabelled = [code[:40] for lang, code in fenced_blocks(page) if not lang]
        assert not unlabelled, f"{name(page)}: fenced blocks without a language: {unlabelled}"


def test_pages_have_python_blocks():
    pages = {page for page, _, _ in BLOCKS}
    expected = {"README.md", *(f"docs/{p}.md" for p in ("attention", "models", "sampling"))}
    assert expected | {"docs/modalities.md", "docs/compat.md"} <= pages


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces -> '-'."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_relative_links_resolve():
    link = re.compile(r"\]\(([^)\s#]*)(?:#([^)\s]*))?\)")
    for page in WRITTEN:
        for target, anchor in link.findall(page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            path = (page.parent / target) if target else page
            assert path.exists(), f"{name(page)}: broken link {target}"
            if anchor:
                assert anchor in anchors(path), f"{name(page)}: no heading #{anchor} in {target}"


def test_pages_state_facts_not_history():
    for page in WRITTEN:
        if page.name == "rules.md":  # written before the runs; kept as it was
            continue
        hits = HISTORY.findall(page.read_text(encoding="utf-8"))
        assert not hits, f"{name(page)} narrates history: {hits}"


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_python_blocks_pass_ruff(command, tmp_path):
    """The pages' code is written like the code base (ruff, configured in pyproject.toml)."""
    for page, index, code in BLOCKS:
        stem = re.sub(r"\W", "_", page)
        (tmp_path / f"{stem}_{index}.py").write_text(code, encoding="utf-8")
    config = ["--config", str(REPO / "pyproject.toml")]
    ruff = [sys.executable, "-m", "ruff", *command, *config, str(tmp_path)]
    result = subprocess.run(ruff, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]


@pytest.mark.slow
@pytest.mark.parametrize(("page", "index", "code"), BLOCKS, ids=[f"{p}:{i}" for p, i, _ in BLOCKS])
def test_python_block_runs(page, index, code, tiny_dir, request, tmp_path, monkeypatch):
    swaps = {
        f'"{hub_id}"': repr(str(tiny_dir(kind)))
        for hub_id, kind in HUB_IDS.items()
        if f'"{hub_id}"' in code
    }
    if any(f'"{run}"' in code for run in RUNS):
        run = request.getfixturevalue("smoke_run")
        swaps |= {'"runs/smoke/final"': repr(str(run / "final")), '"runs/smoke"': repr(str(run))}
    for old, new in swaps.items():
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"<{page} python block {index}>", "exec"), {"__name__": "docs"})
