"""The README is a front door, in the order a new user needs it, and docs/*.md holds the
reference. Their shown outputs are run again against the demo's data (scripts/readme.py) and must
match, times, ports and paths aside; their links must lead somewhere."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from retire.lab.readme import blocks, demo_lab, documents, normalise, refresh_all

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCUMENTS = {path: path.read_text(encoding="utf-8") for path in documents(ROOT)}

ORDER = [
    "Install and try it",
    "Quick start against your own Prometheus",
    "Exit codes",
    "Where next",
]
# The reference, moved out of the README: each page and its title, in the order of "Where next".
REFERENCE = {
    "commands.md": "Commands",
    "offload-and-unload.md": "Offloading and unloading",
    "configuration.md": "Configuration and credentials",
    "scheduled-report.md": "Scheduled report",
    "deployments.md": "Deployments and presets",
    "verdicts.md": "How verdicts are made",
    "recording-rules.md": "Recording rules for large fleets",
    "benchmarks.md": "Benchmarks",
    "layout.md": "Layout",
}
MAX_README_LINES = 320


def test_sections_in_the_order_people_need_them() -> None:
    assert re.findall(r"(?m)^## (.+)$", README) == ORDER


def test_readme_is_a_front_door() -> None:
    assert len(README.splitlines()) <= MAX_README_LINES
    front = README[: README.index("## Install and try it")]
    for preset in ("tfserving-patched", "tfserving", "triton", "torchserve", "mlserver"):
        assert f"`{preset}`" in front  # which preset fits which server, before anything else
    for section in ("### `retire report`", "### `retire safe-list`", "| code | meaning |"):
        assert section in README


def test_reference_pages_keep_their_titles_and_the_readme_links_each() -> None:
    where_next = README[README.index("## Where next") :]
    linked = re.findall(r"\]\(docs/([\w.-]+\.md)\)", where_next)
    assert list(REFERENCE) == [page for page in linked if page in REFERENCE]
    assert set(linked) == {path.name for path in (ROOT / "docs").glob("*.md")}
    for page, title in REFERENCE.items():
        assert (ROOT / "docs" / page).read_text(encoding="utf-8").startswith(f"# {title}\n"), page


def test_install_says_where_retire_is_and_how_to_install_it() -> None:
    install = README[README.index("## Install and try it") : README.index("## Quick start")]
    for needle in (
        "bash scripts/demo.sh",
        "bash scripts/test.sh",
        "./.venv/bin/retire",
        "pipx install .",
        "pip install .",
        "examples/Dockerfile",
        "--keep",
        "--stop",
    ):
        assert needle in install, needle


def test_the_two_commands_come_first() -> None:
    first = README.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    commands = [line.split("#", 1)[0].strip() for line in first if not line.startswith(" ")]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        m = None if fenced else re.match(r"^#{1,6} (.+)$", line)
        if m:
            slug = _slug(m.group(1))
            out.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
            seen[slug] = seen.get(slug, 0) + 1
    return out


def _links(text: str) -> list[str]:
    """Relative link targets outside code: [text](target) and ![alt](target)."""
    prose = re.sub(r"(?ms)^\s*```.*?^\s*```", "", text)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    targets = re.findall(r"\]\(([^)\s]+)\)", prose)
    return [t for t in targets if not re.match(r"^[a-z]+:", t)]


def test_slug_is_githubs() -> None:
    assert _slug("What retire refuses (exit 6 unless noted, one line, nothing moved)") == (
        "what-retire-refuses-exit-6-unless-noted-one-line-nothing-moved"
    )
    assert _slug("`retire safe-list`") == "retire-safe-list"
    assert _slug("Which preset fits: ask Prometheus") == "which-preset-fits-ask-prometheus"


@pytest.mark.parametrize("path", list(DOCUMENTS), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves_to_a_file_and_anchor(path: Path) -> None:
    links = _links(DOCUMENTS[path])
    if path.name == "README.md":
        assert {f"docs/{name}" for name in REFERENCE} <= {link.split("#")[0] for link in links}
    for link in links:
        target, _, anchor = link.partition("#")
        resolved = (path.parent / target).resolve() if target else path
        assert resolved.exists(), f"{path.name}: {link} leads nowhere"
        if anchor:
            assert resolved.suffix == ".md", f"{path.name}: {link}: an anchor in a file that has none"
            assert anchor in _anchors(resolved.read_text(encoding="utf-8")), (
                f"{path.name}: {link}: no such heading"
            )


def test_shown_commands_are_marked() -> None:
    shown = [b for path, text in DOCUMENTS.items() for b in blocks(text.split("\n"), path.name)]
    commands = [c for b in shown for c in b.commands]
    assert len(shown) >= 7
    assert any("--at" in c for c in commands)
    assert any(c.startswith("retire query") for c in commands)
    assert any(b.columns == 80 for b in blocks(README.split("\n")))
    assert len(blocks(README.split("\n"))) >= 4  # report, --at, the formats and safe-list


@pytest.mark.prometheus
def test_shown_outputs_are_what_the_commands_print(tmp_path: Path) -> None:
    texts = {path.relative_to(ROOT).as_posix(): text for path, text in DOCUMENTS.items()}
    with demo_lab(tmp_path) as lab:
        fresh = refresh_all(texts, lab)
    for name, text in texts.items():
        want, got = normalise(text), normalise(fresh[name])
        diff = "\n".join(difflib.unified_diff(want.split("\n"), got.split("\n"), name, "fresh", lineterm=""))
        assert want == got, f"{name} is stale; run `python scripts/readme.py`:\n{diff}"
    # the --at example falls inside the demo's data: versions come out safe, not unknown
    at_block = fresh["README.md"][fresh["README.md"].index('--at "$(date') :]
    assert "half_plus_two\t1\t" in at_block.split("```")[0]


def test_normalise_keeps_what_matters() -> None:
    a = "window 2026-11-24T12:30:17Z source http://127.0.0.1:41234 (pid 77) 5 safe"
    b = "window 2026-11-25T01:00:00Z source http://127.0.0.1:9090 (pid 1) 5 safe"
    assert normalise(a) == normalise(b)
    assert normalise(a) != normalise(b.replace("5 safe", "6 safe"))
