-- The server said 429: no slot of limiter %(name)s before now + %(seconds)s.
UPDATE claimsflow_meta.rate_limits
SET next_at = greatest(next_at, clock_timestamp() + make_interval(secs => %(seconds)s))
WHERE name = %(name)s;
