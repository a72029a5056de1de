-- Request budgets shared by every worker that calls one external API (include/http/pg_limiter.py).
-- Two rules, both kept in the limiter's row and both decided under its row lock:
--   slots:  each caller reserves the next slot (interval_s apart) and sleeps until it, which spreads
--           the requests evenly;
--   window: right before its HTTP send a caller records the send time in sent_at (the last `keep`
--           sends, clock_timestamp() of this server), and may send only if the send `keep` back is at
--           least window_s old, so no window_s-long window ever holds more than `keep` real sends, even
--           when a request leaves its process late after its slot.
-- This is what makes the requests-per-second limit hold across concurrent tasks and machines.
CREATE SCHEMA IF NOT EXISTS claimsflow_meta;

CREATE TABLE IF NOT EXISTS claimsflow_meta.rate_limits (
    name       text PRIMARY KEY,
    next_at    timestamptz      NOT NULL,
    interval_s double precision NOT NULL CHECK (interval_s > 0),
    sent_at    timestamptz[]    NOT NULL DEFAULT '{}'
);
-- tables created before the window rule (checked first: ALTER TABLE would lock out every worker)
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute
                   WHERE attrelid = 'claimsflow_meta.rate_limits'::regclass AND attname = 'sent_at' AND NOT attisdropped) THEN
        ALTER TABLE claimsflow_meta.rate_limits ADD COLUMN sent_at timestamptz[] NOT NULL DEFAULT '{}';
    END IF;
END
$$;

-- The window rule, in one round trip: 0 = the send is recorded, go now; > 0 = nothing recorded, ask
-- again after that many seconds. A function, not one UPDATE, so that the time is read after the row
-- lock is held (a waiter's stamp is always later than the send it waited for).
CREATE OR REPLACE FUNCTION claimsflow_meta.rate_limit_send(p_name text, p_keep integer, p_window_s double precision)
RETURNS double precision LANGUAGE plpgsql AS $$
DECLARE
    sent timestamptz[];
    n    integer;
    now_ timestamptz;
    due  timestamptz;
BEGIN
    SELECT r.sent_at INTO sent FROM claimsflow_meta.rate_limits r WHERE r.name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'rate limit % has no row: reserve a slot first', p_name;
    END IF;
    now_ := clock_timestamp();
    n := coalesce(cardinality(sent), 0);
    IF n >= p_keep THEN
        due := sent[n - p_keep + 1] + make_interval(secs => p_window_s);
        IF now_ < due THEN
            RETURN extract(epoch FROM due - now_)::float8;
        END IF;
    END IF;
    UPDATE claimsflow_meta.rate_limits r
    SET sent_at = (sent || now_)[greatest(1, n + 2 - p_keep):]
    WHERE r.name = p_name;
    RETURN 0;
END
$$;
