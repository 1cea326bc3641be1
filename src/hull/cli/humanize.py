"""docker's human-readable output (github.com/docker/go-units and the STATUS column of ``docker ps``).

``human_duration`` is go-units ``HumanDuration``; ``human_size`` is ``HumanSizeWithPrecision``
(decimal units; go-units ``HumanSize`` is precision 4, while docker's ``images``, ``ps --size`` and
``stats`` I/O columns pass 3); ``bytes_size`` is ``BytesSize`` (binary units, ``docker stats`` memory).
``status_text`` is the daemon's ``State.String()`` that ``docker ps`` shows, ``created_text`` the
CREATED column. Times are integers of nanoseconds since the epoch, as the engine records them.
"""

from __future__ import annotations

_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: an approximation such as "About a minute" or "3 weeks".

    Go converts the duration to whole seconds and minutes by truncation, and hours by rounding
    half up (``int(d.Hours() + 0.5)``); days, weeks and months derive from those hours, years from
    the truncated hours. A negative duration reads as "Less than a second", as in Go.
    """
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def _scaled(size: float, base: float, units: tuple[str, ...]) -> tuple[float, str]:
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return size, units[i]


def human_size(size: float, precision: int = 4) -> str:
    """go-units HumanSizeWithPrecision: ``%.{precision}g`` of the size in powers of 1000, e.g. "1.23MB".

    Python's ``%g`` is Go's for these magnitudes (same significant digits, trailing zeros dropped,
    a two-digit exponent: 999.9 at precision 3 is "1e+03kB" in both).
    """
    value, unit = _scaled(float(size), 1000.0, _DECIMAL)
    return f"{value:.{precision}g}{unit}"


def bytes_size(size: float) -> str:
    """go-units BytesSize: ``%.4g`` of the size in powers of 1024, e.g. "1.5MiB" (``docker stats``)."""
    value, unit = _scaled(float(size), 1024.0, _BINARY)
    return f"{value:.4g}{unit}"


def _ago(then_ns: int, now_ns: int) -> str:
    return human_duration((now_ns - then_ns) / 1e9)


def status_text(
    state: str,
    exit_code: int,
    started_at_ns: int,
    finished_at_ns: int,
    now_ns: int,
    paused: bool = False,
    restarting: bool = False,
    health: str | None = None,
) -> str:
    """The STATUS column of ``docker ps`` (moby's ``State.String()``).

    ``state`` is the engine's status word ("created", "running", "paused", "restarting", "exited",
    "removing", "dead"); a zero time means "never" as Go's zero ``time.Time``. ``health`` is
    "starting", "healthy" or "unhealthy" when the container has a health check.
    """
    paused = paused or state == "paused"
    restarting = restarting or state == "restarting"
    if state in ("running", "paused", "restarting") or paused or restarting:
        # moby keeps Running true while paused or restarting; paused is reported first.
        out = "Up " + _ago(started_at_ns, now_ns)
        if paused:
            return out + " (Paused)"
        if restarting:
            return f"Restarting ({exit_code}) {_ago(finished_at_ns, now_ns)} ago"
        if health:
            return f"{out} ({'health: starting' if health == 'starting' else health})"
        return out
    if state == "removing":
        return "Removal In Progress"
    if state == "dead":
        return "Dead"
    if not started_at_ns:
        return "Created"
    if not finished_at_ns:
        return ""
    return f"Exited ({exit_code}) {_ago(finished_at_ns, now_ns)} ago"


def created_text(created_ns: int, now_ns: int) -> str:
    """The CREATED column of ``docker ps``/``docker images``: "5 seconds ago"."""
    return _ago(created_ns, now_ns) + " ago"
