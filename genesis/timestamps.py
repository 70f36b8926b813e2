"""Genesis time in the exact text CometBFT writes: RFC 3339 in UTC, nanoseconds, trailing zeros cut.

Go marshals `time.Time` with RFC3339Nano, which drops trailing zeros of the fraction (and the dot
when the fraction is zero). Python's datetime stops at microseconds, so nanoseconds are kept apart.
"""

import re
import time
from datetime import UTC, datetime, timedelta, timezone

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)


def format_genesis_time(moment: datetime, nanos: int = 0) -> str:
    """Formats an aware datetime (its seconds) plus `nanos` (0..999999999) as CometBFT does.

    The datetime's own microseconds are ignored; pass the full sub-second part in `nanos`.
    """
    if moment.tzinfo is None:
        raise ValueError("genesis time needs a time zone")
    if not 0 <= nanos < 1_000_000_000:
        raise ValueError(f"nanoseconds out of range: {nanos}")
    utc = moment.astimezone(UTC)
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def now_genesis_time() -> str:
    """The current time in CometBFT's genesis format, to the nanosecond the OS reports."""
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    return format_genesis_time(datetime.fromtimestamp(seconds, UTC), nanos)


def normalize_genesis_time(value: str | datetime) -> str:
    """Accepts an RFC 3339 string (up to 9 fraction digits) or an aware datetime (TOML's own
    datetime type) and returns CometBFT's canonical form; raises ValueError otherwise."""
    if isinstance(value, datetime):
        return format_genesis_time(value, value.microsecond * 1000)
    if not isinstance(value, str):
        raise ValueError(f"expected an RFC 3339 time, got {type(value).__name__}")
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r} is not RFC 3339, e.g. '2026-01-01T00:00:00Z'")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    nanos = int((match.group(7) or "").ljust(9, "0"))
    offset = match.group(8)
    try:
        if offset in ("Z", "z"):
            zone = UTC
        else:
            sign = -1 if offset[0] == "-" else 1
            zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
        moment = datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError as err:
        raise ValueError(f"{value!r} is not a real date and time: {err}") from None
    return format_genesis_time(moment, nanos)
