-- Right before an HTTP send of limiter %(name)s: 0 = recorded as sent now (go), > 0 = the send
-- %(keep)s back is younger than %(window_s)s, ask again after that many seconds (see rate_limits.sql).
SELECT claimsflow_meta.rate_limit_send(%(name)s, %(keep)s, %(window_s)s);
