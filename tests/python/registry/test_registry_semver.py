import pytest

from pytools.core import semver


def test_precedence_follows_the_semver_spec_example():
    # semver.org section 11 example, shuffled, plus build metadata that must not affect order
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
               "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "2.0.0", "2.1.0", "2.1.1", "10.0.0"]
    shuffled = ordered[5:] + ordered[:5]
    assert semver.sort_versions(shuffled) == ordered


def test_numeric_identifiers_compare_numerically_and_before_alphanumeric():
    assert semver.parse("1.4.0-mr.9") < semver.parse("1.4.0-mr.10")
    assert semver.parse("1.4.0-1") < semver.parse("1.4.0-alpha")
    assert semver.parse("1.4.0-mr.42") < semver.parse("1.4.0")


def test_build_metadata_is_ignored_for_precedence():
    assert semver.parse("1.4.0+git.3f2a1bc") == semver.parse("1.4.0+git.ffffff")
    assert semver.parse("1.4.0-mr.42+git.3f2a1bc").build == ("git", "3f2a1bc")


@pytest.mark.parametrize("bad", ["1.4", "01.2.3", "1.2.3-", "1.2.3-01", "v1.2.3", "1.2.3+", "a.b.c", ""])
def test_invalid_versions_are_refused(bad):
    with pytest.raises(semver.SemverError):
        semver.parse(bad)


VERSIONS = ["0.2.3", "0.2.9", "0.3.0", "1.0.0", "1.2.3", "1.2.5", "1.3.0", "1.4.0-mr.7", "1.9.9", "2.0.0",
            "2.1.0-rc.1"]


@pytest.mark.parametrize("spec,expected", [
    ("^1.2", "1.9.9"), ("~1.2.3", "1.2.5"), (">=1.0 <2", "1.9.9"), (">= 1.0 < 1.3", "1.2.5"),
    ("1.x", "1.9.9"), ("1.2.*", "1.2.5"), ("*", "2.0.0"), ("^0.2.3", "0.2.9"), ("~1", "1.9.9"),
    ("1.0.0 - 1.2", "1.2.5"), ("<1.0.0 || >=1.3 <1.4", "1.3.0"), ("=1.2.3", "1.2.3"), (">2", None),
    ("1.4.0-mr.1 - 1.4.0", "1.4.0-mr.7"), ("^2.1.0-rc.0", "2.1.0-rc.1"),
])
def test_ranges(spec, expected):
    best = semver.max_satisfying(VERSIONS, spec)
    assert (str(best) if best else None) == expected


def test_ranges_do_not_pull_in_unrelated_prereleases():
    assert not semver.parse_range("^1.2").matches("1.4.0-mr.7")
    assert semver.parse_range("^1.2").matches("1.4.0-mr.7", include_prerelease=True)


@pytest.mark.parametrize("bad", ["", "^", "1.2.3.4", ">=a"])
def test_bad_ranges_are_refused(bad):
    with pytest.raises(semver.SemverError):
        semver.max_satisfying(VERSIONS, bad)
