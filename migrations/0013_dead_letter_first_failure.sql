-- Dead letters you can act on (`bridge dead-letters`): when an event first
-- failed for good, beside `failed_at`, which a redrive that fails again
-- moves to its latest failure.
ALTER TABLE bridge_dead_letters ADD COLUMN first_failed_at timestamptz;
UPDATE bridge_dead_letters SET first_failed_at = failed_at;
ALTER TABLE bridge_dead_letters
    ALTER COLUMN first_failed_at SET DEFAULT now(),
    ALTER COLUMN first_failed_at SET NOT NULL;
