-- A temporary table the health check fills with COPY; gone at the end of the transaction.
CREATE TEMPORARY TABLE healthcheck_probe (id bigint NOT NULL, label text NOT NULL) ON COMMIT DROP
