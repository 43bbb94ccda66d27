"""The runs page's search language (durably_reflex/states/run_search.py): what each term means, the
filters it sends, the errors it shows, and the canonical text a URL keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from durably_reflex import Run
from durably_reflex.states.run_search import RunSearch, TimeBound, parse_search

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def filters(text: str) -> dict:
    parsed = parse_search(text, now=NOW)
    assert parsed.ok, parsed.errors
    return parsed.search.filters(NOW)


def errors(text: str) -> list[str]:
    return parse_search(text, now=NOW).errors


def test_every_kind_of_term_becomes_its_filter() -> None:
    assert filters(
        "job:import-csv status:failed customer=acme input.user.email=ada@example.com since:1h until:2025-03-02 "
        "replay-of:01JB2X0000 01M9"
    ) == {
        "job_name": "import-csv",
        "status": "failed",
        "labels": {"customer": "acme"},
        "input_fields": {"user.email": "ada@example.com"},
        "created_after": NOW - timedelta(hours=1),
        "created_before": datetime(2025, 3, 2, tzinfo=UTC),
        "replay_of": "01JB2X0000",
        "id_prefix": "01M9",
    }


def test_an_empty_search_filters_nothing() -> None:
    parsed = parse_search("   ", now=NOW)
    assert parsed.ok and parsed.search.is_empty and parsed.search.filters(NOW) == {}


def test_quoted_values_keep_their_spaces_quotes_and_separators() -> None:
    assert filters(r'input.subject="Autumn news" team="a \"b\" c" url="http://x/?a=b"') == {
        "labels": {"team": 'a "b" c', "url": "http://x/?a=b"},
        "input_fields": {"subject": "Autumn news"},
    }


def test_a_value_may_hold_colons_and_equal_signs_after_the_first_separator() -> None:
    assert filters("since:2025-01-31T09:00+02:00 note=a=b") == {
        "created_after": datetime(2025, 1, 31, 7, 0, tzinfo=UTC),
        "labels": {"note": "a=b"},
    }


@pytest.mark.parametrize(
    ("written", "ago"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("7d", timedelta(days=7)),
        ("2W", timedelta(weeks=2)),
    ],
)
def test_a_time_ago_is_counted_back_from_when_the_page_fetches(written: str, ago: timedelta) -> None:
    search = parse_search(f"since:{written}", now=NOW).search
    assert search.filters(NOW) == {"created_after": NOW - ago}
    later = NOW + timedelta(minutes=5)
    assert search.filters(later) == {"created_after": later - ago}  # it slides, it is not fixed at parse time


def test_a_date_or_time_without_an_offset_is_utc() -> None:
    assert filters("since:2025-01-31 until:2025-02-01T08:30") == {
        "created_after": datetime(2025, 1, 31, tzinfo=UTC),
        "created_before": datetime(2025, 2, 1, 8, 30, tzinfo=UTC),
    }


def test_a_bare_word_is_the_beginning_of_a_run_id_raised_to_upper_case() -> None:
    assert filters("01jb2x") == {"id_prefix": "01JB2X"}


def test_a_status_is_read_in_any_case() -> None:
    assert filters("status:FAILED") == {"status": "failed"}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("state:failed", 'unknown filter "state:"'),
        ("status:broken", "a status is one of pending, running, completed, failed, cancelled"),
        ("job:a job:b", "one job: at a time"),
        ("since:yesterday", "since: takes a time ago"),
        ("since:1h until:2h", "is not before until:2h"),
        ("abc def", "one run id at a time"),
        ("ab-cd", "a word alone is the beginning of a run id"),
        ("x" * 65, "a word alone is the beginning of a run id"),
        ("input.a..b=1", "an input field is names of letters"),
        ("-bad=1", "a label key is letters"),
        ("team=a team=b", '"team" is given twice'),
        ('subject="Autumn', "a quote is not closed"),
        ("job:", "job: needs a value"),
    ],
)
def test_a_term_that_does_not_read_says_why_and_nothing_is_applied(text: str, says: str) -> None:
    parsed = parse_search(text, now=NOW)
    assert any(says in error for error in parsed.errors), parsed.errors
    assert parsed.search.is_empty


def test_every_term_that_does_not_read_has_its_own_error() -> None:
    assert len(errors("status:x since:y job:ok")) == 2


def test_too_many_labels_or_input_fields_are_refused_as_the_api_would() -> None:
    assert errors(" ".join(f"k{i}=v" for i in range(21))) == ["At most 20 labels in a search."]
    assert errors(" ".join(f"input.f{i}=v" for i in range(11))) == ["At most 10 input fields in a search."]


def test_the_text_is_canonical_and_reads_back_the_same() -> None:
    search = parse_search('01m9 since:1H team="data eng" job:import-csv input.vip=true status:failed', now=NOW).search
    assert search.text() == 'job:import-csv status:failed team="data eng" input.vip=true since:1h 01M9'
    assert parse_search(search.text(), now=NOW).search == search


def test_adding_a_label_replaces_its_value_and_keeps_the_rest() -> None:
    search = parse_search("job:a team=x", now=NOW).search.with_label("team", "y").with_label("tier", "gold")
    assert search.text() == "job:a team=y tier=gold"


def test_whether_a_search_goes_beyond_what_counts_can_follow() -> None:
    assert not parse_search("job:a status:failed", now=NOW).search.beyond_job_and_status
    assert parse_search("job:a team=x", now=NOW).search.beyond_job_and_status
    assert RunSearch(since=TimeBound("1h", ago=timedelta(hours=1))).beyond_job_and_status


def test_a_run_the_search_does_not_match_gives_away_a_server_that_ignores_it() -> None:
    def run(**fields: object) -> Run:
        base = {"id": "01JB2X00000000000000000000", "job_name": "a", "input": {}, "status": "pending"}
        return Run.model_validate({**base, "created_at": NOW, "updated_at": NOW, **fields})

    search = parse_search("team=data since:1h 01jb", now=NOW).search
    assert search.matches(run(labels={"team": "data"}), NOW)
    assert not search.matches(run(labels={"team": "ops"}), NOW)
    assert not search.matches(run(labels={"team": "data"}, id="01ZZ2X00000000000000000000"), NOW)
    assert not search.matches(run(labels={"team": "data"}, created_at=NOW - timedelta(hours=2)), NOW)
    assert parse_search("replay-of:X", now=NOW).search.matches(run(replay_of="X"), NOW)
    assert not parse_search("replay-of:X", now=NOW).search.matches(run(), NOW)
