"""Business-time arithmetic: SLA due times across nights, weekends, holidays and DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sla.calendar import (
    ALL_DAY_WEEK,
    BusinessCalendar,
    add_business_time,
    elapsed_business_time,
    is_open,
    make_calendar,
    next_open,
    parse_hours,
)

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
SANTIAGO = ZoneInfo("America/Santiago")
GOOSE_BAY = ZoneInfo("America/Goose_Bay")

JP_BUSINESS = make_calendar("jp-business", "Asia/Tokyo", {"mon-fri": "09:00-18:00"}, holiday_country="JP")
ALWAYS = make_calendar("24x7", "UTC", "24x7")


def at(tz: ZoneInfo, *fields: int, fold: int = 0) -> datetime:
    return datetime(*fields, tzinfo=tz, fold=fold)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


# --- the acceptance example and holidays -------------------------------------------------------------


def test_ticket_before_a_three_day_weekend_is_due_on_the_next_business_day():
    assert date(2026, 1, 12) in holidays.country_holidays("JP", years=2026)  # Coming of Age Day, Monday
    due = add_business_time(at(TOKYO, 2026, 1, 9, 17, 50), timedelta(minutes=30), JP_BUSINESS)
    assert due == at(TOKYO, 2026, 1, 13, 9, 20)
    assert due.tzinfo is UTC


def test_silver_week_keeps_the_ticket_waiting_until_thursday():
    jp_2026 = holidays.country_holidays("JP", years=2026)
    # Respect for the Aged Day, the citizens' holiday squeezed between two holidays, Autumnal Equinox Day.
    assert {date(2026, 9, 21), date(2026, 9, 22), date(2026, 9, 23)} <= set(jp_2026)
    due = add_business_time(at(TOKYO, 2026, 9, 18, 17, 50), timedelta(minutes=30), JP_BUSINESS)
    assert due == at(TOKYO, 2026, 9, 24, 9, 20)


@pytest.mark.parametrize("day", [date(2025, 2, 24), date(2025, 11, 24), date(2026, 5, 6), date(2027, 3, 22)])
def test_substitute_holidays_are_closed(day: date):
    assert holidays.country_holidays("JP", years=day.year)[day] == "Substitute Holiday"
    noon = at(TOKYO, day.year, day.month, day.day, 12)
    assert not is_open(noon, JP_BUSINESS)
    assert next_open(noon, JP_BUSINESS) == at(TOKYO, day.year, day.month, day.day + 1, 9)


def test_elapsed_skips_nights_weekends_and_holidays():
    friday_5pm, tuesday_10am = at(TOKYO, 2026, 1, 9, 17), at(TOKYO, 2026, 1, 13, 10)
    assert elapsed_business_time(friday_5pm, tuesday_10am, JP_BUSINESS) == hours(2)


def test_elapsed_across_the_year_end_skips_new_years_day():
    new_years_eve, monday = at(TOKYO, 2026, 12, 31, 17), at(TOKYO, 2027, 1, 4, 10)
    assert elapsed_business_time(new_years_eve, monday, JP_BUSINESS) == hours(2)


def test_three_business_days_cross_a_month_end():
    # Friday 10:00 -> 8 h Friday, 9 h Monday, 9 h Tuesday, 1 h Wednesday.
    due = add_business_time(at(TOKYO, 2026, 1, 30, 10), hours(27), JP_BUSINESS)
    assert due == at(TOKYO, 2026, 2, 4, 10)


def test_thirty_days_of_business_time_are_eighty_working_days():
    start = at(TOKYO, 2026, 1, 5, 9)
    jp = holidays.country_holidays("JP", years=[2026, 2027])
    working_days = [
        day
        for day in (date(2026, 1, 5) + timedelta(days=n) for n in range(200))
        if day.weekday() < 5 and day not in jp
    ]
    eightieth = working_days[79]
    due = add_business_time(start, timedelta(days=30), JP_BUSINESS)
    assert due == at(TOKYO, eightieth.year, eightieth.month, eightieth.day, 18)


# --- open ranges -----------------------------------------------------------------------------------------

LUNCH_BREAK = make_calendar("lunch", "Asia/Tokyo", {"mon-fri": ["09:00-12:00", "13:00-18:00"]})


def test_lunch_break_is_not_business_time():
    monday = (2026, 3, 2)
    assert is_open(at(TOKYO, *monday, 11, 59), LUNCH_BREAK)
    assert not is_open(at(TOKYO, *monday, 12, 30), LUNCH_BREAK)
    assert add_business_time(at(TOKYO, *monday, 10), hours(4), LUNCH_BREAK) == at(TOKYO, *monday, 15)
    assert elapsed_business_time(at(TOKYO, *monday, 11), at(TOKYO, *monday, 14), LUNCH_BREAK) == hours(2)
    assert next_open(at(TOKYO, *monday, 12, 30), LUNCH_BREAK) == at(TOKYO, *monday, 13)


def test_a_due_time_that_fills_a_range_exactly_is_its_end_not_the_next_opening():
    due = add_business_time(at(TOKYO, 2026, 3, 2, 17), hours(1), JP_BUSINESS)
    assert due == at(TOKYO, 2026, 3, 2, 18)
    assert next_open(due, JP_BUSINESS) == at(TOKYO, 2026, 3, 3, 9)


def test_next_open_is_the_instant_itself_when_open():
    monday_10am = at(TOKYO, 2026, 3, 2, 10)
    assert next_open(monday_10am, JP_BUSINESS) == monday_10am
    assert next_open(at(TOKYO, 2026, 3, 7, 10), JP_BUSINESS) == at(TOKYO, 2026, 3, 9, 9)  # Saturday


def test_adding_zero_returns_the_start_even_when_closed():
    saturday = at(TOKYO, 2026, 3, 7, 10)
    assert add_business_time(saturday, timedelta(0), JP_BUSINESS) == saturday
    assert add_business_time(saturday, timedelta(0), JP_BUSINESS).tzinfo is UTC


def test_24x7_ignores_hours_and_holidays():
    assert ALWAYS.always_open
    new_years_day = at(TOKYO, 2026, 1, 1, 3)
    assert is_open(new_years_day, ALWAYS)
    assert add_business_time(new_years_day, timedelta(minutes=30), ALWAYS) == at(TOKYO, 2026, 1, 1, 3, 30)
    assert elapsed_business_time(new_years_day, new_years_day + hours(50), ALWAYS) == hours(50)


def test_24x7_with_holidays_is_open_around_the_clock_except_on_holidays():
    cal = make_calendar("jp-24x7", "Asia/Tokyo", "24x7", holiday_country="JP")
    assert not cal.always_open
    assert not is_open(at(TOKYO, 2026, 1, 1, 12), cal)
    assert is_open(at(TOKYO, 2026, 1, 3, 3), cal)
    assert next_open(at(TOKYO, 2026, 1, 1, 12), cal) == at(TOKYO, 2026, 1, 2)


def test_closed_dates_are_closed():
    cal = make_calendar(
        "offsite", "Asia/Tokyo", {"mon-fri": "09:00-18:00"}, closed_dates=["2026-03-03", date(2026, 3, 4)]
    )
    assert cal.closed_dates == {date(2026, 3, 3), date(2026, 3, 4)}
    assert not is_open(at(TOKYO, 2026, 3, 3, 10), cal)
    assert add_business_time(at(TOKYO, 2026, 3, 2, 17), hours(2), cal) == at(TOKYO, 2026, 3, 5, 10)


def test_ranges_can_run_to_midnight_and_continue_the_next_day():
    cal = make_calendar("night-shift", "Asia/Tokyo", {"mon": "22:00-24:00", "tue": "00:00-06:00"})
    assert add_business_time(at(TOKYO, 2026, 3, 2, 23), hours(3), cal) == at(TOKYO, 2026, 3, 3, 2)


# --- DST --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "length"),
    [
        ("America/New_York", date(2026, 3, 8), 23),  # spring forward at 02:00
        ("America/New_York", date(2026, 11, 1), 25),  # fall back at 02:00
        ("America/New_York", date(2026, 11, 2), 24),
        ("Europe/Berlin", date(2026, 3, 29), 23),
        ("Europe/Berlin", date(2026, 10, 25), 25),
        ("America/Santiago", date(2026, 9, 6), 23),  # 00:00 never happens: clocks jump to 01:00
        ("America/Santiago", date(2026, 4, 4), 25),  # 23:00-24:00 happens twice
    ],
)
def test_an_all_day_range_counts_the_real_length_of_the_day(zone: str, day: date, length: int):
    before, after = day - timedelta(days=1), day + timedelta(days=1)
    cal = make_calendar("only-that-day", zone, "24x7", closed_dates=[before, after])
    tz = ZoneInfo(zone)
    first_midnight = at(tz, before.year, before.month, before.day)
    window = (first_midnight, at(tz, after.year, after.month, after.day) + hours(24))
    assert elapsed_business_time(*window, cal) == hours(length)


def test_office_hours_stay_nine_hours_across_a_dst_weekend():
    cal = make_calendar("us", "America/New_York", {"mon-fri": "09:00-18:00"})
    friday_5pm = at(NEW_YORK, 2026, 3, 6, 17)  # EST
    due = add_business_time(friday_5pm, hours(9), cal)
    assert due == at(NEW_YORK, 2026, 3, 9, 17)  # EDT
    assert due == datetime(2026, 3, 9, 21, tzinfo=UTC)
    assert elapsed_business_time(at(NEW_YORK, 2026, 3, 9), at(NEW_YORK, 2026, 3, 10), cal) == hours(9)


def test_berlin_week_with_the_spring_change_has_45_business_hours():
    cal = make_calendar("de", "Europe/Berlin", {"mon-fri": "09:00-18:00"})
    friday_9am = at(BERLIN, 2026, 3, 27, 9)
    assert add_business_time(friday_9am, hours(10), cal) == datetime(2026, 3, 30, 8, tzinfo=UTC)  # 10:00 CEST
    assert elapsed_business_time(at(BERLIN, 2026, 3, 23), at(BERLIN, 2026, 3, 30), cal) == hours(45)


def test_wall_times_skipped_by_spring_forward_are_never_open():
    cal = make_calendar("sunday", "America/New_York", {"sun": "02:15-03:30"})
    day = (at(NEW_YORK, 2026, 3, 7), at(NEW_YORK, 2026, 3, 9))
    assert elapsed_business_time(*day, cal) == timedelta(minutes=30)  # 03:00-03:30 EDT
    assert next_open(day[0], cal) == at(NEW_YORK, 2026, 3, 8, 3)
    around_the_gap = make_calendar("sunday", "America/New_York", {"sun": "01:00-04:00"})
    assert elapsed_business_time(*day, around_the_gap) == hours(2)


def test_wall_times_repeated_by_fall_back_are_open_both_times():
    cal = make_calendar("sunday", "America/New_York", {"sun": "00:00-01:30"})
    day = (at(NEW_YORK, 2026, 10, 31), at(NEW_YORK, 2026, 11, 2))
    assert elapsed_business_time(*day, cal) == hours(2)  # 00:00-01:30 EDT, then 01:00-01:30 EST
    assert not is_open(at(NEW_YORK, 2026, 11, 1, 1, 45), cal)  # first 01:45, EDT
    assert is_open(at(NEW_YORK, 2026, 11, 1, 1, 15, fold=1), cal)  # second 01:15, EST
    due = add_business_time(at(NEW_YORK, 2026, 11, 1), hours(1) + timedelta(minutes=45), cal)
    # A repeated wall time never compares equal across zones (PEP 495), so compare in UTC.
    assert due == at(NEW_YORK, 2026, 11, 1, 1, 15, fold=1).astimezone(UTC)


def test_a_fall_back_across_midnight_keeps_due_times_in_time_order():
    # Goose Bay fell back at 00:01 in 1987: Sunday's first minute came before Saturday's second 23:01-24:00.
    cal = make_calendar("weekend-nights", "America/Goose_Bay", {"sat": "23:00-24:00", "sun": "00:00-00:30"})
    start = at(GOOSE_BAY, 1987, 10, 24, 22)
    for minutes in range(0, 200, 7):
        due = add_business_time(start, timedelta(minutes=minutes), cal)
        assert due == _minute_walk(start, minutes, cal)
        assert elapsed_business_time(start, due, cal) == timedelta(minutes=minutes)


def _minute_walk(start: datetime, minutes: int, cal: BusinessCalendar) -> datetime:
    """Brute force: step a minute at a time, counting the minutes that open."""
    instant = start.astimezone(UTC)
    while minutes:
        minutes -= is_open(instant, cal)
        instant += timedelta(minutes=1)
    return instant


# --- guards and validation -------------------------------------------------------------------------------


def test_a_calendar_that_is_never_open_raises_instead_of_looping():
    never = BusinessCalendar("never", "UTC", ((),) * 7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="no open time within"):
        add_business_time(start, hours(1), never)
    with pytest.raises(ValueError, match="no open time within"):
        next_open(start, never)
    assert elapsed_business_time(start, start + timedelta(days=10), never) == timedelta(0)


def test_years_of_closed_dates_raise_instead_of_looping():
    closed = frozenset(date(2026, 1, 1) + timedelta(days=n) for n in range(4 * 366))
    cal = BusinessCalendar("closed", "UTC", ALL_DAY_WEEK, closed_dates=closed)
    with pytest.raises(ValueError, match="no open time within"):
        next_open(datetime(2026, 1, 1, tzinfo=UTC), cal)


@pytest.mark.parametrize(
    "call",
    [
        lambda naive: is_open(naive, JP_BUSINESS),
        lambda naive: next_open(naive, JP_BUSINESS),
        lambda naive: add_business_time(naive, hours(1), JP_BUSINESS),
        lambda naive: elapsed_business_time(naive, naive, JP_BUSINESS),
    ],
)
def test_naive_datetimes_are_rejected(call):
    with pytest.raises(ValueError, match="naive datetime"):
        call(datetime(2026, 3, 2, 10))


def test_negative_durations_are_rejected():
    with pytest.raises(ValueError, match="must not be negative"):
        add_business_time(at(TOKYO, 2026, 3, 2, 10), -timedelta(seconds=1), JP_BUSINESS)


def test_elapsed_is_zero_when_the_end_is_not_after_the_start():
    monday = at(TOKYO, 2026, 3, 2, 10)
    assert elapsed_business_time(monday + hours(1), monday, JP_BUSINESS) == timedelta(0)


def test_parse_hours_reads_days_ranges_and_closed_days():
    week = parse_hours({"mon-fri": ["09:00-12:00", "13:00-18:00"], "sat": "10:00-14:00", "sun": ""})
    assert week == ((((540, 720), (780, 1080)),) * 5) + (((600, 840),), ())
    assert parse_hours({"Tue": "13:00-18:00, 9:00-12:00", "wed": "18:00-24:00"}) == (
        (),
        ((540, 720), (780, 1080)),
        ((1080, 1440),),
        (),
        (),
        (),
        (),
    )
    assert parse_hours("24x7") == ALL_DAY_WEEK
    assert parse_hours({"mon": []}) == ((),) * 7


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"mon": "09:00-12:00, 11:00-13:00"}, "Monday: 09:00-12:00 overlaps 11:00-13:00"),
        ({"mon": "18:00-09:00"}, "mon: '18:00-09:00' must end after it starts (split overnight hours"),
        ({"mon": "09:00-09:00"}, "must end after it starts"),
        ({"funday": "09:00-18:00"}, "unknown day 'funday' (use mon, tue, wed, thu, fri, sat, sun"),
        ({"fri-mon": "09:00-18:00"}, "days 'fri-mon' must run forward through the week"),
        ({"mon": "9am-5pm"}, "mon: bad time '9am' (use HH:MM from 00:00 to 24:00)"),
        ({"mon": "09:00-24:30"}, "bad time '24:30'"),
        ({"mon": "09:60-10:00"}, "bad time '09:60'"),
        ({"mon": "24:00-24:00"}, "starts at 24:00, which can only end a range"),
        ({"mon": "09:00"}, "mon: bad range '09:00' (use HH:MM-HH:MM"),
        ({"mon-fri": "09:00-18:00", "fri": "10:00-12:00"}, "Friday is given twice ('mon-fri' and 'fri')"),
        ({"mon": 9}, 'mon: hours must be a range like "09:00-18:00" or a list of them, got 9'),
        ("weekdays", 'hours must be "24x7" or a table of days'),
    ],
)
def test_parse_hours_explains_what_is_wrong(spec, message: str):
    with pytest.raises(ValueError) as error:
        parse_hours(spec)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "Asia/Tokio"}, "unknown timezone 'Asia/Tokio' (use an IANA name"),
        ({"timezone": ""}, "unknown timezone ''"),
        ({"holiday_country": "XX"}, "unknown holiday country 'XX'"),
        ({"hours": {}}, "calendar 'c' has no open hours"),
        ({"closed_dates": ["2026-02-30"]}, "bad closed date '2026-02-30' (use YYYY-MM-DD)"),
    ],
)
def test_make_calendar_rejects_bad_config(kwargs, message: str):
    args = {"name": "c", "timezone": "Asia/Tokyo", "hours": {"mon-fri": "09:00-18:00"}} | kwargs
    with pytest.raises(ValueError) as error:
        make_calendar(**args)
    assert message in str(error.value)


def test_make_calendar_accepts_a_lower_case_holiday_country():
    cal = make_calendar("c", "Asia/Tokyo", {"mon": "09:00-10:00"}, holiday_country="jp")
    assert cal.holiday_country == "JP"


def test_a_calendar_rejects_hours_out_of_order():
    with pytest.raises(ValueError, match="Monday: ranges must be in time order"):
        BusinessCalendar("c", "UTC", (((600, 700), (100, 200)),) + ((),) * 6)


# --- properties -------------------------------------------------------------------------------------------

ZONES = ["Asia/Tokyo", "America/New_York", "Europe/Berlin", "America/Santiago", "Australia/Lord_Howe"]
# Days around the 2026 offset changes of those zones, where arithmetic is easiest to get wrong.
CHANGES = [
    datetime(2026, month, day, tzinfo=UTC)
    for month, day in [(3, 8), (3, 29), (4, 5), (9, 6), (10, 4), (10, 25), (11, 1)]
]


@st.composite
def day_ranges(draw: st.DrawFn) -> tuple[tuple[int, int], ...]:
    quarters = sorted(draw(st.lists(st.integers(0, 96), unique=True, max_size=6)))
    return tuple((quarters[i] * 15, quarters[i + 1] * 15) for i in range(0, len(quarters) - 1, 2))


calendars = st.one_of(
    st.just(JP_BUSINESS),
    st.just(ALWAYS),
    st.builds(
        BusinessCalendar,
        name=st.just("generated"),
        timezone=st.sampled_from(ZONES),
        weekly_hours=st.tuples(*[day_ranges()] * 7).filter(any),
        holiday_country=st.sampled_from([None, "JP", "US"]),
    ),
)
instants = st.one_of(
    st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
    st.builds(
        lambda change, shift: change + shift,
        st.sampled_from(CHANGES),
        st.timedeltas(-timedelta(days=3), timedelta(days=3)),
    ),
)
durations = st.timedeltas(timedelta(0), timedelta(days=2))
properties = settings(max_examples=60, deadline=None)


@properties
@given(calendars, instants, durations, durations)
def test_adding_more_time_never_gives_an_earlier_due_time(cal, start, d1, d2):
    shorter, longer = sorted([d1, d2])
    assert add_business_time(start, shorter, cal) <= add_business_time(start, longer, cal)


@properties
@given(calendars, instants, durations, durations)
def test_adding_in_two_steps_equals_adding_the_sum(cal, start, d1, d2):
    in_steps = add_business_time(add_business_time(start, d1, cal), d2, cal)
    assert in_steps == add_business_time(start, d1 + d2, cal)


@properties
@given(calendars, instants, durations)
def test_elapsed_undoes_add(cal, start, duration):
    assert elapsed_business_time(start, add_business_time(start, duration, cal), cal) == duration


@properties
@given(calendars, instants, durations, durations)
def test_elapsed_adds_up_over_a_split_point(cal, start, d1, d2):
    middle, end = start + d1, start + d1 + d2
    total = elapsed_business_time(start, end, cal)
    assert total == elapsed_business_time(start, middle, cal) + elapsed_business_time(middle, end, cal)


@properties
@given(calendars, instants, durations.filter(bool))
def test_a_due_time_ends_while_the_clock_was_counting(cal, start, duration):
    due = add_business_time(start, duration, cal)
    just_before = due - timedelta(microseconds=1)
    assert is_open(just_before, cal)
    assert elapsed_business_time(just_before, due, cal) == timedelta(microseconds=1)


@properties
@given(calendars, instants)
def test_next_open_is_open_and_no_business_time_passes_before_it(cal, instant):
    opens = next_open(instant, cal)
    assert opens >= instant
    assert is_open(opens, cal)
    assert elapsed_business_time(instant, opens, cal) == timedelta(0)
    assert (opens == instant) == is_open(instant, cal)


@settings(max_examples=25, deadline=None)
@given(calendars, instants, st.integers(1, 36 * 60))
def test_elapsed_matches_counting_open_minutes_one_by_one(cal, start, minutes):
    start = start.replace(second=0, microsecond=0)
    open_minutes = sum(is_open(start + timedelta(minutes=n), cal) for n in range(minutes))
    assert elapsed_business_time(start, start + timedelta(minutes=minutes), cal) == timedelta(
        minutes=open_minutes
    )
