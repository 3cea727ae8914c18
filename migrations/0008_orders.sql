-- Orders service: orders, their lines, and the idempotency keys of
-- `POST /orders`.
--
-- An order is placed in one statement that reserves its stock through
-- `reserve_stock` (the products migration), inserts the order and its
-- lines at the prices the reservation returned, and writes `order.created`
-- to the outbox: all of it or none of it.
--
-- Status: pending -> paid | payment_failed | cancelled. The three others
-- are terminal: `orders_status_guard` turns any update that would leave a
-- terminal state, or jump to a state the machine does not allow, into a
-- no-op, so a late or redelivered event cannot move an order backwards
-- whatever the statement that tries says.

CREATE TABLE orders (
    id             uuid          PRIMARY KEY,
    user_id        uuid          NOT NULL,
    status         text          NOT NULL DEFAULT 'pending',
    total          numeric(14,2) NOT NULL,
    currency       text          NOT NULL,
    -- The payment method the buyer gave (a processor token, never a card).
    payment_token  text,
    payment_status text          NOT NULL DEFAULT 'pending',
    payment_reason text,
    expires_at     timestamptz   NOT NULL,
    created_at     timestamptz   NOT NULL DEFAULT now(),
    updated_at     timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT orders_status_check
        CHECK (status IN ('pending', 'paid', 'payment_failed', 'cancelled')),
    CONSTRAINT orders_payment_status_check
        CHECK (payment_status IN ('pending', 'succeeded', 'failed')),
    CONSTRAINT orders_total_check CHECK (total >= 0)
);

-- "My orders, newest first" (keyset paging on created_at, id).
CREATE INDEX orders_user_created_idx ON orders (user_id, created_at DESC, id DESC);
-- The clock's sweep for unpaid orders.
CREATE INDEX orders_pending_expiry_idx ON orders (expires_at) WHERE status = 'pending';

CREATE TABLE order_items (
    order_id   uuid          NOT NULL REFERENCES orders (id),
    product_id uuid          NOT NULL,
    quantity   integer       NOT NULL,
    unit_price numeric(12,2) NOT NULL,
    PRIMARY KEY (order_id, product_id),
    CONSTRAINT order_items_quantity_check CHECK (quantity > 0)
);

CREATE FUNCTION orders_status_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status
       AND (OLD.status <> 'pending'
            OR NEW.status NOT IN ('paid', 'payment_failed', 'cancelled')) THEN
        RETURN NULL; -- skip the row: terminal states never change
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER orders_status_guard BEFORE UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_status_guard();

-- `Idempotency-Key` records of POST /orders, per user. A key is claimed
-- (`response_status` NULL) before the order is attempted; the statement
-- placing the order sets `order_id` in the same transaction; the answer
-- is stored once known. A claim whose lease ran out without an order is
-- free again (the attempt died before committing); one with an order
-- answers that order. Kept 24 hours.
CREATE TABLE order_idempotency_keys (
    user_id         uuid        NOT NULL,
    key             text        NOT NULL,
    request_hash    text        NOT NULL,
    order_id        uuid,
    response_status integer,
    response_body   text,
    locked_until    timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

-- Raises one of spinmesh's own conditions from inside a SQL expression
-- (`CASE WHEN ok THEN value ELSE spinmesh_refuse(...) END`), aborting the
-- statement; the functions' database helpers read the code and detail.
CREATE FUNCTION spinmesh_refuse(p_code text, p_message text, p_detail text)
RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION '%', p_message USING ERRCODE = p_code, DETAIL = coalesce(p_detail, '');
END;
$$;
