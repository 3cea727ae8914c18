-- Products service: the catalog and its stock.
--
-- Prices are exact decimals (NUMERIC with at most two places), never
-- floating point. Stock never goes below zero (a CHECK, so even a bug
-- cannot oversell), and it changes only through the two functions below:
-- they are the one way another service (orders) touches stock.
--
-- A reservation belongs to an order: `reserve_stock(order_id, items)`
-- takes stock for every line of an order or for none, and
-- `release_stock(order_id)` gives back whatever that order still holds
-- (on cancellation or a failed payment). Both are idempotent per order,
-- so a redelivered event cannot reserve or release twice.

CREATE TABLE products (
    id          uuid          PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text          NOT NULL,
    description text          NOT NULL DEFAULT '',
    price       numeric(12,2) NOT NULL,
    currency    text          NOT NULL DEFAULT 'USD',
    stock       integer       NOT NULL,
    archived_at timestamptz,
    created_at  timestamptz   NOT NULL DEFAULT now(),
    updated_at  timestamptz   NOT NULL DEFAULT now(),
    CONSTRAINT products_name_check CHECK (length(name) BETWEEN 1 AND 200),
    CONSTRAINT products_price_check CHECK (price >= 0),
    CONSTRAINT products_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT products_stock_check CHECK (stock >= 0)
);

-- Listings show live products in a stable keyset order.
CREATE INDEX products_live_created_idx ON products (created_at, id) WHERE archived_at IS NULL;

CREATE TABLE stock_reservations (
    order_id    uuid        NOT NULL,
    product_id  uuid        NOT NULL REFERENCES products (id),
    quantity    integer     NOT NULL,
    unit_price  numeric(12,2) NOT NULL,
    reserved_at timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz,
    PRIMARY KEY (order_id, product_id),
    CONSTRAINT stock_reservations_quantity_check CHECK (quantity > 0)
);

-- Reserves every line of `p_items` (a JSON array of
-- {"product_id": uuid, "quantity": int}; lines naming the same product are
-- added up) for order `p_order`, all or nothing, and returns each
-- product's reserved quantity and current price (the server-side source of
-- an order's total). Rows are locked in id order, so concurrent orders for
-- overlapping products queue instead of deadlocking.
--
-- Raises (aborting the caller's statement, so nothing is reserved):
--   SQLSTATE 'SMOOS' (out of stock): DETAIL names the product id;
--   SQLSTATE 'SMNOP' (no such product, or archived): DETAIL names it;
--   SQLSTATE '22023' (invalid parameter): an empty order or a quantity
--   below 1.
-- Calling it again for an order that already holds reservations returns
-- them unchanged.
CREATE FUNCTION reserve_stock(p_order uuid, p_items jsonb)
RETURNS TABLE (product_id uuid, quantity integer, unit_price numeric, currency text)
LANGUAGE plpgsql AS $$
DECLARE
    line record;
BEGIN
    -- An order that already holds reservations keeps them (a redelivery).
    IF NOT EXISTS (SELECT 1 FROM stock_reservations r WHERE r.order_id = p_order) THEN
        IF jsonb_typeof(p_items) IS DISTINCT FROM 'array' OR jsonb_array_length(p_items) = 0 THEN
            RAISE EXCEPTION 'an order needs at least one item' USING ERRCODE = '22023';
        END IF;
        -- Lock the products first, in id order (FOR UPDATE cannot reach the
        -- nullable side of the outer join below).
        PERFORM 1 FROM products p
          WHERE p.id IN (SELECT (e->>'product_id')::uuid FROM jsonb_array_elements(p_items) e)
          ORDER BY p.id
            FOR UPDATE;
        FOR line IN
            SELECT w.pid, w.qty, p.id AS found, p.stock, p.price, p.archived_at
              FROM (SELECT (e->>'product_id')::uuid AS pid, sum((e->>'quantity')::integer) AS qty
                      FROM jsonb_array_elements(p_items) e GROUP BY 1) w
              LEFT JOIN products p ON p.id = w.pid
             ORDER BY w.pid
        LOOP
            IF line.qty IS NULL OR line.qty < 1 THEN
                RAISE EXCEPTION 'quantity must be at least 1' USING ERRCODE = '22023', DETAIL = line.pid::text;
            END IF;
            IF line.found IS NULL OR line.archived_at IS NOT NULL THEN
                RAISE EXCEPTION 'no such product' USING ERRCODE = 'SMNOP', DETAIL = line.pid::text;
            END IF;
            IF line.stock < line.qty THEN
                RAISE EXCEPTION 'out of stock' USING ERRCODE = 'SMOOS', DETAIL = line.pid::text;
            END IF;
            UPDATE products SET stock = stock - line.qty, updated_at = now() WHERE id = line.pid;
            INSERT INTO stock_reservations (order_id, product_id, quantity, unit_price)
            VALUES (p_order, line.pid, line.qty, line.price);
        END LOOP;
    END IF;
    RETURN QUERY
        SELECT r.product_id, r.quantity, r.unit_price, p.currency
          FROM stock_reservations r JOIN products p ON p.id = r.product_id
         WHERE r.order_id = p_order
         ORDER BY r.product_id;
END;
$$;

-- Gives back the stock order `p_order` still holds and marks its
-- reservations released; returns how many units went back (0 when there
-- was nothing left to release, e.g. a redelivered cancellation).
CREATE FUNCTION release_stock(p_order uuid)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    released integer;
BEGIN
    WITH freed AS (
        UPDATE stock_reservations r SET released_at = now()
         WHERE r.order_id = p_order AND r.released_at IS NULL
        RETURNING r.product_id, r.quantity
    ), restocked AS (
        UPDATE products p SET stock = p.stock + f.quantity, updated_at = now()
          FROM freed f WHERE p.id = f.product_id
        RETURNING f.quantity
    )
    SELECT coalesce(sum(quantity), 0)::integer INTO released FROM restocked;
    RETURN released;
END;
$$;
