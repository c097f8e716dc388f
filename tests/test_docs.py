"""The documentation's cross-references: every `docs/<chapter>.md` that the code, the configs, the tests or
the documentation itself names exists, and where a reference names a section
(`docs/physics.md, "Generation"`), that chapter has it as a heading or a bold lead-in. A moved or renamed
section then fails here, not in a reader's hands. Measurements name the stop that made them by its number
("stop 41"), never relative to the stop that wrote the sentence ("this stop", "the stop before"), and every
stop named has its row in docs/default_run.md, "Stops"."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = [
    "README.md",
    "Snakefile",
    "docs",
    "src",
    "scripts",
    "workflow",
    "config",
    "tests",
    "bench",
    "slurm",
]
SUFFIXES = {".md", ".py", ".smk", ".yaml", ".sh", ""}
# docs/<chapter>.md, optionally followed by a quoted section name (straight or single quotes, escaped or not)
REFERENCE = re.compile(r"docs/(?P<chapter>[a-z_]+)\.md(?:,\s+\\?[\"'](?P<section>[^\"'\\]{3,80})\\?[\"'])?")


def _files() -> list[Path]:
    out = []
    for name in SOURCES:
        path = REPO / name
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        out += [p for p in candidates if p.suffix in SUFFIXES and "egg-info" not in p.parts]
    return out


def _words(text: str) -> str:
    return " ".join(text.split())


def _has_section(chapter_text: str, section: str) -> bool:
    """A heading (`## Section`) or a bold lead-in (`**Section`) of the chapter, whitespace-normalised."""
    text = _words(chapter_text)
    return f"**{section}" in text or f"# {section}" in text


def test_every_docs_reference_names_an_existing_chapter_and_section():
    chapters = {p.stem: p.read_text(encoding="utf-8") for p in (REPO / "docs").glob("*.md")}
    problems = []
    n_refs = 0
    for path in _files():
        text = _words(path.read_text(encoding="utf-8", errors="replace"))
        for match in REFERENCE.finditer(text):
            n_refs += 1
            chapter = chapters.get(match["chapter"])
            where = f"{path.relative_to(REPO)}: {match.group(0)!r}"
            if chapter is None:
                problems.append(f"{where}: no such chapter")
            elif match["section"] and not _has_section(chapter, match["section"]):
                problems.append(f"{where}: the chapter has no section {match['section']!r}")
    assert n_refs > 20, f"only {n_refs} references found: the pattern no longer matches how they are written"
    assert not problems, "\n".join(problems)


def test_the_readme_lists_every_chapter():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    chapters = sorted(p.name for p in (REPO / "docs").glob("*.md"))
    assert chapters, "docs/ holds no chapter"
    missing = [c for c in chapters if f"](docs/{c})" not in readme]
    assert not missing, f"README's Documentation table does not link {missing}"


def test_reference_pattern_reads_the_forms_in_use():
    text = "a (docs/physics.md, \"Weights and splits\") b docs/fit.md c docs/physics.md, 'Generation'"
    found = [(m["chapter"], m["section"]) for m in REFERENCE.finditer(text)]
    assert found == [("physics", "Weights and splits"), ("fit", None), ("physics", "Generation")]
    assert _has_section("x **Weights and\n  splits** (y)", "Weights and splits")
    assert not _has_section("Weights and splits, below", "Weights and splits")


# "this stop", "the stop before", "the next stop's", "two stops before", "the previous stop": a sentence that
# means something only in the session that wrote it
RELATIVE_STOP = re.compile(
    r"\b(?:this|next|previous|last)\s+stop\b|\bthe\s+stop\s+before\b"
    r"|\b(?:one|two|three|four|five|six|seven|eight|nine|ten)\s+stops?\s+(?:before|ago|earlier|later)\b",
    re.IGNORECASE,
)
NAMED_STOP = re.compile(r"\b[Ss]tops?\s+(\d+)\b")
STOP_ROW = re.compile(r"^\| (\d+) \| `([0-9a-f]{7,40})` \|$", re.MULTILINE)


def _documentation() -> dict[str, str]:
    paths = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    return {str(p.relative_to(REPO)): p.read_text(encoding="utf-8") for p in paths}


def _stop_rows() -> list[tuple[int, str]]:
    """(stop, last commit) of each row of docs/default_run.md, "Stops", in the table's order."""
    text = (REPO / "docs/default_run.md").read_text(encoding="utf-8")
    return [(int(n), commit) for n, commit in STOP_ROW.findall(text)]


def test_documentation_names_stops_by_number():
    problems = [
        f'{name}: {match.group(0)!r} in "…{_words(text[max(0, match.start() - 40) : match.end() + 20])}…"'
        for name, text in _documentation().items()
        for match in RELATIVE_STOP.finditer(text)
    ]
    where = 'docs/default_run.md, "Stops"'
    assert not problems, f"name the stop by its number ({where}):\n" + "\n".join(problems)


def test_every_stop_named_has_its_last_commit_listed():
    table = dict(_stop_rows())
    assert len(table) > 10, "docs/default_run.md's Stops table is gone or no longer in its format"
    assert list(table) == sorted(table), "the Stops table is not in order"
    named = {int(n) for text in _documentation().values() for n in NAMED_STOP.findall(text)}
    missing = sorted(named - set(table))
    assert not missing, f'stops named without a row in docs/default_run.md, "Stops": {missing}'


def test_stop_patterns_read_the_forms_in_use():
    bad = "this stop's kernels; the stop before; The next stop added; three stops before; the previous stop's"
    assert len(RELATIVE_STOP.findall(bad)) == 5
    assert not RELATIVE_STOP.findall("stop 41's kernels; since stop 37; Stop 38 added; a non-stop run")
    assert [int(n) for n in NAMED_STOP.findall("stop 41's kernels; Stop 38 added; stops 39")] == [41, 38, 39]
    assert STOP_ROW.findall("| stop | last commit |\n| 41 | `3928cf5` |\n") == [("41", "3928cf5")]


def test_the_stops_last_commits_are_this_history_in_order():
    """Each listed commit is in this checkout's history, each stop's after the one before (where git and the
    full history are here; a tarball or a shallow clone skips)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("no git checkout")

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)

    if git("rev-parse", "--is-shallow-repository").stdout.strip() != "false":
        pytest.skip("a shallow clone: the stops' commits are not all here")
    commits = [c for _, c in _stop_rows()]
    unknown = [c for c in commits if git("cat-file", "-e", f"{c}^{{commit}}").returncode != 0]
    if len(unknown) == len(commits):
        pytest.skip("none of the stops' commits is in this history (a copy with a history of its own)")
    assert not unknown, f'docs/default_run.md, "Stops" lists commits not in this history: {unknown}'
    later = [
        (a, b) for a, b in zip(commits, commits[1:]) if git("merge-base", "--is-ancestor", a, b).returncode
    ]
    assert not later, f"a stop's last commit is not an ancestor of the next stop's: {later}"
    assert git("merge-base", "--is-ancestor", commits[-1], "HEAD").returncode == 0, (
        "the last stop is not in HEAD"
    )
