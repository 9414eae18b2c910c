"""Pure: what of a registry record counts, in a canonical form.

`prune(record, ignore)` drops every field whose dotted path (list positions left out) matches one
of the `ignore` patterns (fnmatch; `*` also crosses dots), so noise such as `derivedSection`,
`versionHolder`, last-update dates or `geoPoint` never reaches the diff. `canonical(value)` makes
text edits that change only whitespace or CommonMark escapes (`\\[` -> `[`) equal, and makes the
order of every list irrelevant. `fingerprint(record)` hashes the canonical pruned record.

`content_digest(record, ignore)` is the cheap test the pipeline runs on every study of every
poll: a hash of the record as sent (key and list order kept, texts untouched) without the fields
the ignore patterns name by path (`derivedSection`, the last-update dates), walked along a cached
tree of paths (each path matched against the ignore patterns once per process, not once per
record). A `*.NAME` field (a site's `geoPoint`) is left in: pruning it meant walking every site of
every record in Python, a third of the digest's cost, for a field NLM rewrites only now and then.
Equal digests mean equal pruned records, so the diff finds nothing; different digests may still
be the same study (a geoPoint rewritten, a reordered list, an escape), which the pipeline then
settles with `fingerprint`/`diff` and the stored version, silently.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from fnmatch import translate
from functools import lru_cache
from typing import Any

import orjson

from watcher.config import DEFAULT_IGNORE
from watcher.jsontext import compact_json
from watcher.model import get_path

__all__ = [
    "DEFAULT_IGNORE",
    "canonical",
    "canonical_json",
    "content_digest",
    "fingerprint",
    "get_path",
    "leaf_paths",
    "normalize_text",
    "prune",
    "differing_keys",
    "prune_beside",
    "same_json",
]


_MARKDOWN_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!<>|~])")


def prune(value: Any, ignore: Sequence[str] = DEFAULT_IGNORE, path: str = "") -> Any:
    """A copy of `value` without the fields whose path matches an ignore pattern."""
    if not path and isinstance(value, dict | list):
        return _pruned(value, _path_tree(tuple(ignore)))  # the same, each path matched once per process
    return _prune(value, _ignore_pattern(tuple(ignore)), path)


def _prune(value: Any, ignored: re.Pattern[str] | None, path: str) -> Any:
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            if ignored is None or not ignored.match(child):
                kept[key] = _prune(item, ignored, child)
        return kept
    if isinstance(value, list):
        return [_prune(item, ignored, path) for item in value]
    return value


def prune_beside(
    value: dict[str, Any], old: dict[str, Any], old_pruned: dict[str, Any], ignore: Sequence[str], path: str = ""
) -> dict[str, Any]:
    """prune(value, ignore), given `old` (another version of the record) and `old_pruned` (its prune):
    every subtree the same JSON in both is taken from `old_pruned`, shared, not pruned again (a
    changed study's new version is mostly its old one). Only the keys new here are matched."""
    kept = {}
    for key, item in value.items():
        before = old.get(key, _ABSENT)
        if before is not _ABSENT and key not in old_pruned:
            continue  # pruned from `old`: this path is ignored
        if before is not _ABSENT and same_json(item, before):
            kept[key] = old_pruned[key]
        elif isinstance(item, dict) and isinstance(before, dict):
            kept[key] = prune_beside(item, before, old_pruned[key], ignore, f"{path}.{key}" if path else key)
        else:
            kept.update(prune({key: item}, ignore, path))
    return kept


_ABSENT = object()


@lru_cache(maxsize=32)
def _ignore_pattern(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """All ignore patterns as one compiled regex (fnmatch semantics, case-sensitive)."""
    return re.compile("|".join(f"(?:{translate(p)})" for p in patterns)) if patterns else None


_Rules = tuple[tuple[bytes, ...], tuple[str, ...]]  # (b'NAME":' of each `*.NAME`, other patterns' literal starts)
_WILD = re.compile(r"[*?\[]")


class _PathNode:
    """One dotted path (list positions left out) seen in records, with its children by key; a
    child is None when its path matches an ignore pattern. Built as records arrive.

    `plain`: no pattern can match a path below this one except the `*.NAME` patterns, whose key
    names (`names`) are then looked for in the subtree's JSON (content_digest skips a subtree
    that has none of them: nothing to prune there)."""

    __slots__ = ("children", "names", "path", "pattern", "plain", "rules")

    def __init__(self, path: str, pattern: re.Pattern[str] | None, rules: _Rules) -> None:
        self.path, self.pattern, self.rules, self.names = path, pattern, rules, rules[0]
        self.children: dict[str, _PathNode | None] = {}
        below = f"{path}." if path else ""
        self.plain = not any(below.startswith(start) or start.startswith(below) for start in rules[1])

    def child(self, key: str) -> _PathNode | None:
        path = f"{self.path}.{key}" if self.path else key
        ignored = self.pattern is not None and self.pattern.match(path)
        node = None if ignored else _PathNode(path, self.pattern, self.rules)
        self.children[key] = node
        return node


@lru_cache(maxsize=32)
def _path_tree(patterns: tuple[str, ...]) -> _PathNode:
    names, starts = [], []
    for pattern in patterns:
        name = pattern[2:]
        if pattern.startswith("*.") and name.isprintable() and not _WILD.search(name) and not set(name) & set('."\\'):
            names.append(name.encode() + b'":')  # a key ending so, as orjson writes it
        else:
            starts.append(_WILD.split(pattern, maxsplit=1)[0])
    return _PathNode("", _ignore_pattern(patterns), (tuple(names), tuple(starts)))


def _pruned(value: Any, node: _PathNode) -> Any:
    """prune() along the cached path tree: the same result, one dict lookup per key."""
    if isinstance(value, list):
        return [_pruned(item, node) if isinstance(item, dict | list) else item for item in value]
    kept = {}
    children = node.children
    for key, item in value.items():
        child = children.get(key, _UNSEEN)
        if child is _UNSEEN:
            child = node.child(key)
        if child is not None:
            kept[key] = _pruned(item, child) if isinstance(item, dict | list) else item
    return kept


_UNSEEN = _PathNode("", None, ((), ()))  # a marker: this key was never met at this path


def _digest_view(value: Any, node: _PathNode) -> Any:
    """_pruned(value), except that a subtree with nothing to prune is the original, uncopied:
    only the paths that lead to an ignored field are walked in Python."""
    if node.plain:
        try:
            encoded = orjson.dumps(value) if node.names else b""
        except TypeError:  # what orjson refuses: walked
            encoded = node.names[0]
        for name in node.names:
            if name in encoded:
                break
        else:
            return value
    if isinstance(value, list):  # its items (sites, say) share one path: walked without more looking
        return [_pruned(item, node) if isinstance(item, dict | list) else item for item in value]
    kept = {}
    children = node.children
    for key, item in value.items():
        child = children.get(key, _UNSEEN)
        if child is _UNSEEN:
            child = node.child(key)
        if child is not None:
            kept[key] = _digest_view(item, child) if isinstance(item, dict | list) else item
    return kept


def content_digest(record: dict[str, Any], ignore: Sequence[str] = DEFAULT_IGNORE) -> str:
    """sha256 of the record as sent less the fields its ignore patterns name by path (see the
    module docstring): equal only for two records whose tracked fields are equal byte for byte
    (then the diff finds nothing); cheap enough to run on every study of a poll."""
    return hashlib.sha256(compact_json(_digest_view(record, _named_paths(tuple(ignore))))).hexdigest()


@lru_cache(maxsize=32)
def _named_paths(patterns: tuple[str, ...]) -> _PathNode:
    """The path tree without its `*.NAME` patterns' names: a subtree with no other pattern below
    it is kept whole, uncopied (a `*.NAME` key met on a path that is walked is still pruned)."""
    tree = _path_tree(patterns)
    return _PathNode("", tree.pattern, ((), tree.rules[1]))


def normalize_text(text: str) -> str:
    """Whitespace folded and CommonMark backslash escapes removed."""
    if "\\" in text:
        text = _MARKDOWN_ESCAPE.sub(r"\1", text)
    return " ".join(text.split())


def canonical(value: Any) -> Any:
    """Texts normalised, lists sorted, dicts recursed: equal when only noise differs."""
    if isinstance(value, str):
        return normalize_text(value)
    if isinstance(value, dict):
        return {key: canonical(item) for key, item in value.items() if item not in (None, "", [], {})}
    if isinstance(value, list):
        return sorted((canonical(item) for item in value), key=_order)
    return value


def _order(item: Any) -> bytes:
    """A canonical item as sorted JSON: distinct items, distinct keys (any such order will do)."""
    try:
        return orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # what orjson refuses (an integer over 64 bits)
        return json.dumps(item, sort_keys=True, ensure_ascii=False).encode()


def same_json(a: Any, b: Any) -> bool:
    """True only when `a` and `b` are the same JSON, type for type (`1` is neither `True` nor `1.0`),
    so that canonical(a) == canonical(b) without working either out: a C-speed test the diff runs
    before canonicalising (most of a changed record is unchanged). False when unsure."""
    if a != b:
        return False
    try:
        return orjson.dumps(a) == orjson.dumps(b)
    except TypeError:  # what orjson refuses: the caller canonicalises
        return False


def differing_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The keys of two modules whose values differ once canonical, sorted (same JSON: skipped
    without canonicalising)."""
    if same_json(before, after):
        return []
    return sorted(
        key
        for key in set(before) | set(after)
        if not same_json(before.get(key), after.get(key)) and canonical(before.get(key)) != canonical(after.get(key))
    )


def canonical_json(value: Any) -> str:
    return json.dumps(canonical(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def fingerprint(pruned_record: dict[str, Any]) -> str:
    """Equal for two records exactly when the diff finds no change between them."""
    return hashlib.sha256(canonical_json(pruned_record).encode()).hexdigest()


def leaf_paths(value: Any, path: str = "", depth: int = 3) -> dict[str, Any]:
    """Values by dotted path, descending into dicts only, down to `depth` levels."""
    if not isinstance(value, dict) or depth == 0:
        return {path: value}
    paths: dict[str, Any] = {}
    for key, item in value.items():
        paths.update(leaf_paths(item, f"{path}.{key}" if path else key, depth - 1))
    return paths
