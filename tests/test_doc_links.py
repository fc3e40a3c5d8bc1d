"""Every relative link in the project's Markdown points at something that exists.

Checked files: README.md, every .md under docs/, and benchmarks/README.md. For each inline link
or image (``[text](target)``, ``![alt](target)``) and each reference definition
(``[id]: target``) outside code, a relative target must exist, resolved from the Markdown file's
folder (``#anchor`` and ``?query`` stripped; http(s), mailto and other ``scheme:`` links are not
checked). An anchor into a Markdown file (or into a folder, meaning its README.md; or a bare
``#anchor``, meaning this file) must be one of that file's headings as GitHub slugs it.
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target "title") / ![alt](<target>); the text may hold one level of brackets
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)"
                  r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_ANCHOR = re.compile(r"<a\s[^>]*(?:name|id)\s*=\s*[\"']([^\"']+)[\"']", re.I)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def doc_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]
    files += sorted((ROOT / "docs").rglob("*.md"))
    return [f for f in files if f.is_file()]


def _lines_outside_fences(text: str):
    """(line number, line) for every line not inside a fenced code block."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            continue
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) \
                    and not line.strip()[len(m.group(1)):].strip():
                fence = None
            continue
        yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text lower-cased, every character that is not
    a letter, mark, number, '_', '-' or space dropped, spaces turned into '-'."""
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    kept = [c for c in text.lower()
            if c in " -_" or unicodedata.category(c)[0] in "LMN"]
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub gives ``path``: heading slugs (repeats get -1, -2, ...) and HTML ids."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in _lines_outside_fences(path.read_text(encoding="utf-8")):
        found.update(HTML_ANCHOR.findall(line))
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2) or "")
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path):
    """(line number, target) of every link and image in ``path`` outside code."""
    for number, line in _lines_outside_fences(path.read_text(encoding="utf-8")):
        m = REFERENCE.match(line)
        if m:
            yield number, m.group(1)
            continue
        # a link's text may be inline code; a link written inside inline code is no link
        masked = INLINE_CODE.sub(lambda c: "`" + "x" * len(c.group(2)) + "`", line)
        for m in LINK.finditer(masked):
            start, end = m.span(1)
            yield number, line[start:end]


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    problems = []
    cache: dict[Path, set[str]] = {}
    for number, raw in links(path):
        target = raw.strip()
        if target.startswith("<") and target.endswith(">"):
            target = target[1:-1].strip()
        if not target or SCHEME.match(target):
            continue
        target_path, _, anchor = target.partition("#")
        target_path = unquote(target_path.split("?", 1)[0])
        where = f"{path.relative_to(root)}:{number}: ({raw})"
        dest = (path.parent / target_path).resolve() if target_path else path
        if not dest.exists():
            problems.append(f"{where} -> {target_path} does not exist")
            continue
        if not anchor:
            continue
        if dest.is_dir():
            dest = dest / "README.md"
        if dest.suffix.lower() != ".md" or not dest.is_file():
            continue  # an anchor into a file that has no headings to check
        anchor = unquote(anchor)
        if dest not in cache:
            cache[dest] = anchors(dest)
        if anchor not in cache[dest]:
            problems.append(f"{where} -> no heading #{anchor} in {dest.relative_to(root)}")
    return problems


def test_the_checked_files_exist():
    names = {str(f.relative_to(ROOT)) for f in doc_files()}
    assert {"README.md", "benchmarks/README.md"} <= names
    assert any(n.startswith("docs/") for n in names)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    problems = broken_links(path)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_slugs_follow_github():
    assert slug("The demo's base model (`r3v pretrain`)") == "the-demos-base-model-r3v-pretrain"
    assert slug("GRPO (`run.method: grpo`)") == "grpo-runmethod-grpo"
    assert slug("r3v — R³V self-improving VLM") == "r3v--r³v-self-improving-vlm"
    assert slug("Local data_set: *canonical* schema") == "local-data_set-canonical-schema"
    assert slug("See [the docs](docs/x.md) now") == "see-the-docs-now"


def test_the_checker_finds_broken_links(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.md").write_text("# Title one\n\n## Same\n\n## Same\n", encoding="utf-8")
    (tmp_path / "pic.png").write_bytes(b"")
    doc = tmp_path / "README.md"
    doc.write_text(
        "# Top\n"
        "[ok](sub/a.md) [ok](sub/a.md#title-one) [ok](sub/a.md#same-1) ![ok](pic.png)\n"
        "[ok](#top) [ok](https://example.com/missing) [ok](mailto:x@y.z) `[no](link.md)`\n"
        "[ok](sub) [ok](<sub/a.md> \"title\")\n"
        "```\n[no](inside-a-fence.md)\n```\n"
        "[bad](sub/b.md) ![bad](missing.png) [bad](sub/a.md#same-2) [bad](#nowhere)\n"
        "[ref]: sub/gone.md\n",
        encoding="utf-8")
    problems = broken_links(doc, tmp_path)
    assert len(problems) == 5, problems
    joined = "\n".join(problems)
    for bad in ("sub/b.md", "missing.png", "#same-2", "#nowhere", "sub/gone.md"):
        assert bad in joined
