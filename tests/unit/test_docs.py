"""The repository's docs stand on their own: short README, links that resolve, and no
reference to files outside the repository (a clone has nothing beside it)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
             "node_modules"}
TEXT_SUFFIXES = {".py", ".md", ".cfg", ".toml", ".yaml", ".yml", ".json", ".ini", ".conf",
                 ".config", ".sql", ".txt", ".mako", ".sh", ".html", ".js", ".css"}
# Spelled in pieces so that this file does not match itself.
OUTSIDE = [re.compile(p) for p in (
    r"\.\./" + "shared/",
    r"\b(CONTRACT|RELIABILITY|STYLE|DEVELOPERS)" + r"\.md\b",
    r"/" + r"work/",
)]
README_MAX_LINES = 160


def project_files() -> list[Path]:
    """The repository's own files: what git tracks or would track (not build output)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.splitlines()
        candidates = [ROOT / name for name in listed]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk the tree
        candidates = list(ROOT.rglob("*"))
    found = []
    for path in candidates:
        parts = set(path.relative_to(ROOT).parts)
        if parts & SKIP_DIRS or any(p.endswith(".egg-info") for p in parts):
            continue
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name in
                               ("Makefile", "Dockerfile", ".env.example")):
            found.append(path)
    return found


def outside_references(text: str) -> list[str]:
    return [m.group(0) for pattern in OUTSIDE for m in pattern.finditer(text)]


def test_no_file_refers_to_files_outside_the_repository() -> None:
    offenders = []
    for path in project_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if outside_references(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("line", [
    "see ../" + "shared/CONTRACT" + ".md", "(RELIABILITY" + ".md)", "cd /" + "work/main",
])
def test_the_check_sees_an_outside_reference(line: str) -> None:
    assert outside_references(line)


def test_the_readme_fits_on_about_one_screen() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, len(lines)


def test_the_readme_has_what_a_newcomer_needs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for needed in ("make run", "make test", "make services", "## Trying it", "jq",
                   "## Configuration", "## Commands", "docs/bench.md", "docs/architecture.md"):
        assert needed in readme, needed
    bench = readme.split("## Benchmarks", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in bench.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 5, "the benchmark table: a header and five rows"


def test_the_architecture_page_has_its_sections() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for heading in ("## One token's journey", "## The layers", "## Where to look",
                    "## Glossary"):
        assert heading in text, heading


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_relative_links_of_the_docs_resolve() -> None:
    broken = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
                 *sorted((ROOT / "deploy").glob("*.md"))]:
        for target in LINK.findall(path.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (path.parent / target).exists():
                broken.append(f"{path.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def test_files_named_in_where_to_look_exist() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text.split("## Where to look", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`((?:api|workers|cli|shared|schemas|docs|tests)/[^` ]*)`", table)
    assert named
    missing = [n for n in named if not (ROOT / n).exists()]
    assert not missing, missing


def test_the_docs_date_their_history() -> None:
    """A measurement's "today" means nothing a week later: history carries its date."""
    undated = re.compile(r"\b(today|yesterday|this stop)\b", re.IGNORECASE)
    found = [f"{path.relative_to(ROOT)}:{number}"
             for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if undated.search(line)]
    assert not found, found


def test_the_readme_configuration_table_names_every_setting_and_only_those() -> None:
    from shared.settings import Settings

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = {name for line in table.splitlines() if line.startswith("| `")
                  for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])}
    assert documented == {name.upper() for name in Settings.model_fields}


PATH_IN_TEXT = re.compile(
    r"\b((?:api|workers|cli|shared|schemas|bench|deploy|docs|tests)/[\w./-]*\.(?:py|md|sql|yaml|yml))\b")


def test_every_project_file_the_docs_name_exists() -> None:
    """A move (a module renamed, a folder split) leaves no stale path in the docs."""
    missing = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
                 *sorted((ROOT / "deploy").glob("*.md"))]:
        for named in PATH_IN_TEXT.findall(path.read_text(encoding="utf-8")):
            if "*" not in named and not (ROOT / named).exists():
                missing.append(f"{path.relative_to(ROOT)}: {named}")
    assert not missing, missing
