"""A poll reads most abstracts without an XML parse (#20, speed): `quick_text` must give the letters
and digits `jats_text` gives (what the word gate reads), a work's NCT ids must be those of its
parsed abstract, and markup that is not plain must not take the quick path. Real abstracts from
../shared/fixtures (crossref, europepmc) when present, our own from tests/data, hostile and
generated ones always."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import OWN_DATA, real_fixtures_path
from watcher.literature.crossref import parse_work
from watcher.literature.crossref_pipeline import squash
from watcher.literature.europepmc import parse_record
from watcher.literature.readouts import jats_text, quick_text
from watcher.matching import extract_nct_ids, strip_tags

HOSTILE = {  # markup the quick path must refuse (None): a parse (or the fallback) decides its text
    "comment": "<jats:p>ren<!-- x>y -->al cell</jats:p>",
    "cdata": "<jats:p><![CDATA[renal &amp; cell]]></jats:p>",
    "dtd": '<!DOCTYPE x [<!ENTITY e "renal">]><jats:p>&e; cell</jats:p>',
    "processing instruction": "<jats:p>renal<?pi x?> cell</jats:p>",
    "character reference": "<jats:p>renal&#x8A;cell</jats:p>",
    "html entity": "<jats:p>renal&nbsp;cell</jats:p>",
    "bare ampersand": "<jats:p>renal & cell</jats:p>",
    "> in an attribute": '<jats:p><jats:x a="b>c">renal</jats:x> cell</jats:p>',
    "stray <": "<jats:p>age < 18, renal cell</jats:p>",
    "stray >": "<jats:p>age > 18, renal cell</jats:p>",
    "odd tag name": "<jats:p><_x>renal</_x> cell</jats:p>",
    "tag before a combining mark": "<jats:p>e</jats:p><jats:p>\u0301 renal</jats:p>",
    "tag before a Hangul vowel": "<jats:p>\u1100<jats:italic>\u1161</jats:italic></jats:p>",
}
PIECES = [
    "<jats:p>", "</jats:p>", "<jats:italic>", "</jats:italic>", "<jats:sup>", "</jats:sup>", "<jats:title>",
    "</jats:title>", "<jats:break/>", '<jats:sec id="s1">', "</jats:sec>", "<i>", "</i>", "<b>", "</b>",
    "&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "NCT", "nct0", "12345678", "NCT09000001", "9", " ", "\n",
    "renal", "cell", "CAR-T", "Ki-67", "≥", "–", "µg", "ﬁ", "İ", "Å", "\u0301", "x", "(", ")", "/", ";",
]  # fmt: skip


def real_abstracts() -> Iterator[str]:
    """Every abstract of our own test data and of the real fixtures present."""
    own = json.loads((OWN_DATA / "readouts_rcc.json").read_text())
    yield from (str(work.get("abstract") or "") for work in own["crossref"].values())
    yield from (str(work.get("abstractText") or "") for work in own["europepmc"].values())
    for path in sorted((real_fixtures_path() / "crossref").glob("*.json")) + sorted(
        (real_fixtures_path() / "europepmc").glob("*.json")
    ):
        yield from _abstracts(json.loads(path.read_text()))


def _abstracts(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in ("abstract", "abstractText") and isinstance(inner, str):
                yield inner
            else:
                yield from _abstracts(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _abstracts(inner)


def generated(count: int) -> Iterator[str]:
    """Markup glued from JATS tags, XML entities, NCT-ish runs and non-ASCII letters, well-formed
    or not (same seed each run)."""
    rng = random.Random(20)
    for _ in range(count):
        yield "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 40)))


def test_quick_text_has_the_letters_of_the_parsed_abstract() -> None:
    markups = list(real_abstracts()) + list(generated(5000))
    quick = [markup for markup in markups if quick_text(markup) is not None]
    assert len(quick) > len(markups) // 3  # the quick path is taken (plain markup is the common case)
    if (real_fixtures_path() / "crossref").is_dir():
        assert any(len(markup) > 1000 and quick_text(markup) is not None for markup in markups)  # a real JATS one
    for markup in quick:
        assert squash(quick_text(markup) or "") == squash(jats_text(markup)), markup


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_markup_that_is_not_plain_is_parsed(name: str) -> None:
    assert quick_text(HOSTILE[name]) is None


def test_a_work_names_the_trials_of_its_parsed_abstract_and_is_read_only_when_asked() -> None:
    markups = list(real_abstracts()) + list(generated(8000)) + list(HOSTILE.values())
    unread = 0
    for number, markup in enumerate(markups):
        work = parse_work({"DOI": f"10.1/x.{number}", "title": ["A title"], "abstract": markup})
        record = parse_record({"source": "MED", "id": str(number), "title": "A title", "abstractText": markup})
        assert work is not None and record is not None
        expected = extract_nct_ids(jats_text(markup))
        assert [nct for nct, how in work.named_by.items() if how == "its abstract"] == expected, markup
        assert [nct for nct, how in record.named_by.items() if how == "its abstract"] == expected, markup
        quick = quick_text(markup)
        if quick is not None and "nct" not in quick.lower():
            assert work.parsed is None and record.parsed is None  # names no trial: not read yet
            unread += 1
        assert work.abstract == record.abstract == jats_text(markup)  # read when asked, the same text
        assert squash(work.quick_abstract) == squash(work.abstract)
    assert unread > 100


def test_a_5_mb_abstract_is_cut_before_either_path(tmp_path: Path) -> None:
    huge = "<jats:p>renal cell carcinoma " + "x " * 2_600_000 + "NCT09000001</jats:p>"
    work = parse_work({"DOI": "10.1/huge", "title": ["A title"], "abstract": huge})
    assert work is not None and len(work.markup) == 100_000 and work.nct_ids == ()
    assert len(quick_text(huge) or "") < 100_000 and work.abstract.startswith("renal cell carcinoma x x")


def test_nct_ids_are_found_as_the_case_blind_pattern_finds_them() -> None:
    pattern = re.compile(r"(?<![A-Za-z0-9])NCT(\d{8})(?!\d)", re.IGNORECASE)  # matching's, searched everywhere
    pieces = ["NCT", "nct", "nCt", "N", "C", "T", "0", "1234", "12345678", "9", " ", "a", "\u212a", "\u017f",
              "\u0130", "\u0131", "K", "-", "\u0301", "é", "<jats:p>"]  # fmt: skip
    rng = random.Random(158)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 16)))
        assert extract_nct_ids(text) == list(dict.fromkeys(f"NCT{digits}" for digits in pattern.findall(text)))


def test_strip_tags_removes_what_the_case_blind_patterns_removed() -> None:
    inline = "a|abbr|b|bdi|bdo|cite|code|dfn|em|font|i|kbd|mark|q|s|samp|small|span|strike|strong|sub|sup|tt|u|var"
    inline_tag = re.compile(rf"</?(?:{inline})(?:\s[^<>]*)?/?>", re.IGNORECASE)  # the patterns as they were
    other_tag = re.compile(r"<!--.*?-->|<!\[CDATA\[|\]\]>|</?[A-Za-z][^<>]*>|<![^<>]*>|<\?[^<>]*>", re.DOTALL)
    pieces = ["<", ">", "/", "!", "--", "[CDATA[", "]]>", "]", "?", "em", "EM", "i", "Sup", "b", "abbr", "span", "p",
              "jats:p", " ", "\n", "x", '="', "\u212a", "\u0130", "k", "\u017f", "<!--", "-->", "<?", "<!"]  # fmt: skip
    rng = random.Random(40)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        expected = other_tag.sub(" ", inline_tag.sub("", text)) if "<" in text else text  # strip_html's step
        assert strip_tags(text) == expected, text
