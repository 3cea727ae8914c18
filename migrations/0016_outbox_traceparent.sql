-- The W3C trace context of the request that wrote each event (the
-- CloudEvents distributed-tracing extension attribute `traceparent`),
-- carried with the event through the brokers into the invocations it
-- triggers, so one purchase can be followed across functions. Written by
-- the functions' kit (`kit::trace`) in the same statement as the event;
-- NULL for events written before this column existed or by hand.
ALTER TABLE outbox ADD COLUMN traceparent text;
