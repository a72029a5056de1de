-- Reserve the next request slot of limiter %(name)s; returns the seconds to wait until it (>= 0).
INSERT INTO claimsflow_meta.rate_limits AS r (name, next_at, interval_s)
VALUES (%(name)s, clock_timestamp() + make_interval(secs => %(interval_s)s), %(interval_s)s)
ON CONFLICT (name) DO UPDATE
    SET next_at = greatest(r.next_at, clock_timestamp()) + make_interval(secs => %(interval_s)s),
        interval_s = %(interval_s)s
RETURNING greatest(0, extract(epoch FROM (next_at - make_interval(secs => %(interval_s)s) - clock_timestamp())))::float8;
