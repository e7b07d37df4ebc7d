-- smartpos payment journal, schema version 3.
-- The app's order reference is its idempotency key: Sale and PayWithCode look a sale up by
-- it before creating one, and `find_by_order_ref` serves the app after a lost reply. Not
-- UNIQUE: journals written before version 3 may hold one reference twice.
CREATE INDEX sales_by_order_ref ON sales (order_ref);
