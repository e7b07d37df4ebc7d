-- smartpos payment journal, schema version 2.
-- The risk rules ask "how many payments since T" (velocity) and "how many of this amount
-- since T" (repeated amounts) before every payment; keep those lookups off a full scan
-- as the journal grows over months.
CREATE INDEX sales_by_submitted ON sales (submitted_at_ms);
CREATE INDEX sales_by_amount_submitted ON sales (amount_fen, submitted_at_ms);
