"""Release tags: which tags count, their order, and the security/breaking markers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from packaging.version import Version

from gitrelease.core.errors import InvalidInput
from gitrelease.git.records import TagRef
from gitrelease.git.versions import (
    Channel,
    TagPattern,
    TagScheme,
    is_breaking,
    is_security,
    parse_version,
    select_releases,
    suggest_pattern,
)

V = TagPattern.parse("v*")


def ref(name: str, day: int = 1) -> TagRef:
    return TagRef(name, "0" * 40, "1" * 40, True, datetime(2024, 1, day, tzinfo=UTC), "", name)


@pytest.mark.parametrize(("name", "version"), [
    ("v1.0.0", "1.0.0"), ("v1.10.0", "1.10.0"), ("v2.0.0rc1", "2.0.0rc1"),
    ("v2.0.0-rc.1", "2.0.0rc1"), ("v1!2.0", "1!2.0"), ("v1.0.post1", "1.0.post1"),
    ("vfoo", None), ("v", None), ("nightly", None), ("v-1.0", None), ("1.0.0", None),
    ("v1.0.0.", None),
])
def test_version_of_tag_names(name: str, version: str | None) -> None:
    found = V.version_of(name)
    assert (str(found) if found else None) == version


def test_other_patterns() -> None:
    pattern = TagPattern.parse("release-*-final")
    assert pattern.version_of("release-3.1-final") == Version("3.1")
    assert pattern.version_of("release-3.1") is None
    assert pattern.tag_for(Version("3.1")) == "release-3.1-final"


@pytest.mark.parametrize("bad", ["v", "v**", "*a*", "v?", "v[0-9]*", "v *", ""])
def test_bad_patterns(bad: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        TagPattern.parse(bad)
    assert caught.value.field == "tag_pattern"


def test_ordering_is_pep440_and_channels_filter_prereleases() -> None:
    tags = [ref(n) for n in ("v1.9.0", "v1.10.0", "v1.2.0", "v2.0.0rc1", "v2.0.0.dev3",
                             "nightly", "vnext")]
    stable, ignored = select_releases(tags, V, Channel.STABLE)
    assert [r.tag for r in stable] == ["v1.2.0", "v1.9.0", "v1.10.0"]
    assert ignored == ["vnext"]
    pre, _ = select_releases(tags, V, Channel.PRE)
    assert [r.tag for r in pre] == ["v1.2.0", "v1.9.0", "v1.10.0", "v2.0.0.dev3", "v2.0.0rc1"]


def test_equal_versions_order_by_date_then_name() -> None:
    releases, _ = select_releases([ref("v1.0.0", 2), ref("v1.0", 1)], V, Channel.STABLE)
    assert [r.tag for r in releases] == ["v1.0", "v1.0.0"]


@pytest.mark.parametrize("text", ["2.1.0", "v2.1.0", "V2.1.0", " 2.1.0rc1 "])
def test_parse_version_accepts(text: str) -> None:
    assert parse_version(text) >= Version("2.1.0rc1")


@pytest.mark.parametrize("text", ["", "latest", "--upload-pack=x", "-c", "2.1.0; ls", "v"])
def test_parse_version_refuses(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_version(text, field="--to")


@pytest.mark.parametrize(("messages", "expected"), [
    (["fix: typo"], False),
    (["Fix [SECURITY] token leak"], True),
    (["fix: escape input\n\nSecurity: CVE-2024-0001"], True),
    (["security: rotate keys"], True),
    (["security(auth)!: drop md5"], True),
    (["fix(security): sanitize"], True),
    (["docs: security policy wording"], False),
    (["feat: add securityLevel option"], False),
])
def test_security_markers(messages: list[str], expected: bool) -> None:
    assert is_security(messages) is expected


@pytest.mark.parametrize(("current", "target", "messages", "expected"), [
    ("1.4.0", "2.0.0", [], True),
    ("1.4.0", "1.5.0", [], False),
    ("0.3.0", "0.4.0", [], True),  # 0.x: the minor is the breaking number
    ("0.3.0", "0.3.1", [], False),
    ("1.4.0", "1.5.0", ["feat!: new config format"], True),
    ("1.4.0", "1.5.0", ["refactor(db)!: rename tables"], True),
    ("1.4.0", "1.5.0", ["feat: x\n\nBREAKING CHANGE: settings moved"], True),
    ("1.4.0", "1.5.0", ["feat: x\n\nBREAKING-CHANGE: settings moved"], True),
    ("1.4.0", "1.5.0", ["feat: mention breaking change: none"], False),
    (None, "3.0.0", [], None),  # the running version unknown: not "not breaking"
    (None, "3.0.0", ["feat!: new config format"], True),  # declared: known all the same
])
def test_breaking_markers(
    current: str | None, target: str, messages: list[str], expected: bool | None
) -> None:
    assert is_breaking(Version(current) if current else None, Version(target),
                       messages) is expected


# -- several patterns ----------------------------------------------------------------------

DEFAULT = TagScheme.parse(["v*", "*"])


def test_a_list_of_patterns_takes_both_schemes_and_orders_across_them() -> None:
    tags = [ref(n) for n in ("1.0.0", "5.0", "v5.1.0", "v6.5.0", "nightly", "latest",
                             "vnext", "1.0-final-x", "v1.0.0.")]
    releases, ignored = select_releases(tags, DEFAULT, Channel.STABLE)
    assert [r.tag for r in releases] == ["1.0.0", "5.0", "v5.1.0", "v6.5.0"]
    # Named as "not a version": what carries a pattern's prefix, or starts with a digit;
    # never every tag the bare "*" matches.
    assert sorted(ignored) == ["1.0-final-x", "v1.0.0.", "vnext"]
    alone, ignored_alone = select_releases(tags, TagPattern.parse("*"), Channel.STABLE)
    assert [r.tag for r in alone] == ["1.0.0", "5.0"]
    assert ignored_alone == ["1.0-final-x"]


def test_a_tag_several_patterns_match_counts_once_under_the_first() -> None:
    scheme = TagScheme.parse(["*", "*.0", "*"])
    assert scheme.globs == ["*", "*.0"]
    releases, _ = select_releases([ref("1.2.0")], scheme, Channel.STABLE)
    assert [(r.tag, str(r.version)) for r in releases] == [("1.2.0", "1.2.0")]
    assert scheme.text == '["*", "*.0"]' and TagScheme.parse("v*").text == '"v*"'


def test_a_new_tag_is_named_as_the_newest_release() -> None:
    assert DEFAULT.pattern_for("5.0").tag_for(Version("5.1.0")) == "5.1.0"
    assert DEFAULT.pattern_for("v5.1.0").tag_for(Version("5.2.0")) == "v5.2.0"
    assert DEFAULT.pattern_for(None).tag_for(Version("1.0.0")) == "v1.0.0"


@pytest.mark.parametrize("bad", [[], ["v**"], [1], "x", ["v*"] * 11, ["v*", "v?"], None])
def test_bad_pattern_lists(bad: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        TagScheme.parse(bad)  # type: ignore[arg-type]
    assert caught.value.field == "tag_pattern"


@pytest.mark.parametrize(("name", "glob", "version"), [
    ("release-1.0", "release-*", "1.0"), ("5.0", "*", "5.0"), ("v5.1.0", "v*", "5.1.0"),
    ("release-3.1-final", "release-*-final", "3.1"), ("app/v2.0.0rc1", "app/v*", "2.0.0rc1"),
    ("nightly", None, None), ("vnext", None, None), ("latest", None, None),
    ("2024-01-05", None, None),
])
def test_suggested_patterns(name: str, glob: str | None, version: str | None) -> None:
    found = suggest_pattern(name)
    assert ((found[0].glob, str(found[1])) if found else (None, None)) == (glob, version)
