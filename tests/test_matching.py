"""The matching engine: the domain's own words (RCC, CAR-T, PD-1, MEDI5752) found however a paper
or a registry record spells them, never inside other words, and always with a reason."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from watcher.matching import (
    Match,
    extract_doi,
    extract_nct_ids,
    find_word,
    match_text,
    prepare_text,
    strip_html,
    word_tokens,
)

RCC_WATCH = {
    "conditions": ["renal cell carcinoma", "RCC", "kidney cancer"],
    "terms": ["CAR-T", "bispecific", "MEDI5752", "T-cell engager"],
    "exclude": ["pediatric"],
}


def found(word: str, text: str) -> bool:
    return find_word(word, prepare_text(text)) is not None


# --- examples in the domain's vocabulary ------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "text"),
    [
        ("CAR-T", "CD70-directed CAR T cells"),
        ("CAR-T", "allogeneic CART therapy"),
        ("CAR-T", "CAR‐T (unicode hyphen)"),
        ("CAR-T", "CAR–T (en dash) and CAR—T (em dash)"),
        ("CAR T", "a CAR-T product"),
        ("CART", "a CAR-T product"),
        ("bispecific", "a bi-specific antibody"),
        ("bi-specific", "bispecific antibodies"),
        ("PD-1", "anti-PD1 therapy"),
        ("PD-1", "PD 1 blockade"),
        ("PD1", "anti-PD-1/PD-L1 refractory"),
        ("PD-1/PD-L1", "progressed on PD-1 / PD-L1 inhibitors"),
        ("MEDI5752", "volrustomig (MEDI 5752)"),
        ("MEDI5752", "MEDI-5752, a PD-1/CTLA-4 bispecific"),
        ("renal cell carcinoma", "metastatic Renal\u00a0Cell  Carcinoma"),
        ("renal cell carcinoma", "renal-cell carcinoma"),
        ("RCC", "in ccRCC and (RCC)"),
        ("RCC", "advanced RCC."),
        ("T-cell engager", "a CD70xCD3 T cell engager"),
        ("tumour-infiltrating lymphocytes", "Tumour infiltrating lymphocytes (TIL)"),
        ("NCT05805501", "registered as nct05805501"),
    ],
)
def test_spelling_variants_are_found(word: str, text: str) -> None:
    assert found(word, text)


@pytest.mark.parametrize(
    ("word", "text"),
    [
        ("RCC", "PRCCX fusion"),
        ("RCC", "ccRCC"),  # a different word: watch 'ccRCC' for it
        ("CART", "articular cartilage"),
        ("CAR-T", "a scar tissue"),
        ("PD-1", "PD-L1 expression"),
        ("PD-1", "PD-10 and PD-11"),
        ("MEDI5752", "MEDI57520"),
        ("bispecific", "specific"),
        ("kidney cancer", "kidney function and cancer"),
    ],
)
def test_other_words_are_not_found(word: str, text: str) -> None:
    assert not found(word, text)


def test_html_is_stripped_and_entities_unescaped() -> None:
    assert strip_html("<p>A <em>CAR</em>-T &amp; S<sub>N</sub>2 &lt;trial&gt;</p><p>next</p>") == (
        "A CAR-T & SN2 <trial> next"
    )
    assert found("CAR-T", "<b>CAR</b>&#8209;<b>T</b>")
    assert found("renal cell carcinoma", "renal&nbsp;cell&nbsp;carcinoma")


def test_rcc_car_t_paper_matches_with_reasons() -> None:
    fields = {
        "title": "CD70-targeted <em>CAR-T</em> cells in metastatic disease",
        "summary": "Patients with clear cell renal cell carcinoma after PD-1 blockade (NCT05805501).",
    }
    result = match_text(fields=fields, **RCC_WATCH)
    assert result.matched
    assert result.describe() == '"renal cell carcinoma" in summary; "CAR-T" in title'
    assert [(r.word, r.field) for r in result.reasons] == [("renal cell carcinoma", "summary"), ("CAR-T", "title")]
    assert "CAR-T" in result.reasons[1].text


def test_conditions_and_terms_are_both_required_when_given() -> None:
    only_condition = match_text(fields={"title": "Renal cell carcinoma outcomes"}, **RCC_WATCH)
    only_term = match_text(fields={"title": "CAR-T in lymphoma"}, **RCC_WATCH)
    assert not only_condition.matched and not only_term.matched
    assert only_condition.reasons  # the hit is still reported, for `preview` and debugging


def test_exclude_blocks_and_says_why() -> None:
    result = match_text(fields={"title": "CAR-T for pediatric RCC"}, **RCC_WATCH)
    assert not result.matched
    assert result.describe().endswith('excluded by "pediatric" in title')


def test_only_conditions_or_only_terms() -> None:
    fields = {"conditions": "Carcinoma, Renal Cell", "title": "MEDI5752 in RCC"}
    assert match_text(fields=fields, conditions=["RCC"], terms=[], exclude=[]).matched
    assert match_text(fields=fields, conditions=[], terms=["MEDI5752"], exclude=[]).matched


def test_no_conditions_and_no_terms_match_nothing() -> None:
    assert match_text(fields={"title": "RCC"}, conditions=[], terms=[], exclude=[]) == Match(matched=False)


def test_excerpt_is_short_and_around_the_hit() -> None:
    text = "word " * 100 + "tobemstomig in RCC " + "word " * 100
    excerpt = find_word("tobemstomig", text)
    assert excerpt is not None and "tobemstomig" in excerpt
    assert len(excerpt) <= 90 and excerpt.startswith("…") and excerpt.endswith("…")


def test_word_without_letters_matches_nothing() -> None:
    assert word_tokens("—") == []
    assert not found("—", "a — b")


def test_extract_nct_ids() -> None:
    text = "See nct05805501 and NCT03530397; again NCT05805501, not NCT123456789 nor XNCT03530398."
    assert extract_nct_ids(text, "NCT04514484", "(NCT03530397)") == ["NCT05805501", "NCT03530397", "NCT04514484"]
    assert extract_nct_ids("") == []


@pytest.mark.parametrize(
    ("text", "doi"),
    [
        ("doi:10.1038/s41586-024-07811-4", "10.1038/s41586-024-07811-4"),
        ("https://doi.org/10.1093/ZoolInnean/zlab078.", "10.1093/zoolinnean/zlab078"),
        ("https://dx.doi.org/10.4039/tce.2021.38?rft_dat=source%3Ddrss", "10.4039/tce.2021.38"),
        ("Zootaxa. 2021;5002(1):1-103. doi: 10.11646/zootaxa.5002.1.1.", "10.11646/zootaxa.5002.1.1"),
        ("(doi:10.1016/S0140-6736(21)00001-1)", "10.1016/s0140-6736(21)00001-1"),
        ("10.1002/tax.12650", "10.1002/tax.12650"),
        ("no identifier here 10.12/short", None),
    ],
)
def test_extract_doi(text: str, doi: str | None) -> None:
    assert extract_doi(text) == doi


# --- properties -------------------------------------------------------------------------------

WORDS = st.sampled_from(["RCC", "CAR-T", "bispecific", "MEDI5752", "PD-1", "renal cell carcinoma", "ccRCC", "CD70"])
FILLER = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ,.;()", max_size=40).map(lambda s: f" {s} ")
SEPARATORS = st.sampled_from(["-", " ", "\u2010", "\u2013", "\u2014", "\u00a0", ""])


@given(WORDS, FILLER, FILLER, SEPARATORS, st.integers(min_value=0))
def test_a_break_inserted_into_the_word_still_matches(word, before, after, separator, where):
    letters = word.replace("-", "").replace(" ", "")
    cut = 1 + where % max(1, len(letters) - 1)
    spelled = letters[:cut] + separator + letters[cut:]
    assert found(word, before + spelled + after)


@given(WORDS, FILLER, FILLER, st.lists(st.booleans(), min_size=40, max_size=40))
def test_case_does_not_matter(word, before, after, upper):
    recased = "".join(c.upper() if up else c.lower() for c, up in zip(word, upper, strict=False))
    assert found(word, before + recased + after)
    assert found(recased, before + word + after)


@given(WORDS, st.text(alphabet="abdefghijklmnopqsuvwxyz ,.;()", max_size=200))
def test_text_without_the_words_letters_does_not_match(word, text):
    # none of c, r, t, 0-9 in the alphabet: no watch word above can be spelled
    assert not found(word, text)


@given(WORDS, FILLER, st.sampled_from(["x", "9", "é"]))
def test_a_letter_glued_on_breaks_the_match(word, filler, glue):
    assume(not found(word, filler))
    assert not found(word, filler + glue + word + filler)
    assert not found(word, filler + word + glue + filler)


@given(WORDS, WORDS, FILLER, FILLER)
def test_an_excluded_word_always_blocks(condition, excluded, before, after):
    text = before + condition + " and " + excluded + after
    result = match_text(fields={"title": text}, conditions=[condition], terms=[], exclude=[excluded])
    assert not result.matched
    assert result.excluded_by[0].word == excluded


@given(WORDS, FILLER, FILLER)
def test_a_match_always_has_a_reason_naming_a_field_that_has_the_word(word, before, after):
    fields = {"title": before, "summary": before + word + after}
    result = match_text(fields=fields, conditions=[], terms=[word], exclude=[])
    assert result.matched
    assert [(r.word, r.field) for r in result.reasons] == [(word, "summary")]
    assert found(word, result.reasons[0].text)
