-- `reserve_stock` as one set-based statement instead of a plpgsql loop of
-- five statements per line: the same contract (all lines or none, rows
-- locked in id order, the same SQLSTATEs and DETAILs, idempotent per
-- order), about a quarter less work per order placed.
--
-- The statement locks the wanted products in id order, checks every line
-- (a failed check raises through `spinmesh_refuse`, which aborts the
-- whole statement, so nothing is taken), takes the stock and records the
-- reservations. Under READ COMMITTED the row locks make the stock it
-- checks the stock it updates; the CHECK (stock >= 0) stays as the last
-- guard.

CREATE OR REPLACE FUNCTION reserve_stock(p_order uuid, p_items jsonb)
RETURNS TABLE (product_id uuid, quantity integer, unit_price numeric, currency text)
LANGUAGE plpgsql AS $$
BEGIN
    -- An order that already holds reservations keeps them (a redelivery).
    IF NOT EXISTS (SELECT 1 FROM stock_reservations r WHERE r.order_id = p_order) THEN
        IF jsonb_typeof(p_items) IS DISTINCT FROM 'array' OR jsonb_array_length(p_items) = 0 THEN
            RAISE EXCEPTION 'an order needs at least one item' USING ERRCODE = '22023';
        END IF;
        RETURN QUERY
        WITH wanted AS (
            SELECT (e->>'product_id')::uuid AS pid,
                   sum((e->>'quantity')::integer)::integer AS qty
              FROM jsonb_array_elements(p_items) e
             GROUP BY 1
        ), locked AS (
            SELECT p.id, p.stock, p.price, p.currency, p.archived_at
              FROM products p
             WHERE p.id IN (SELECT w.pid FROM wanted w)
             ORDER BY p.id
               FOR UPDATE
        ), checked AS (
            SELECT w.pid, w.qty, l.price, l.currency,
                   CASE
                     WHEN w.qty IS NULL OR w.qty < 1 THEN
                       spinmesh_refuse('22023', 'quantity must be at least 1', w.pid::text)
                     WHEN l.id IS NULL OR l.archived_at IS NOT NULL THEN
                       spinmesh_refuse('SMNOP', 'no such product', w.pid::text)
                     WHEN l.stock < w.qty THEN
                       spinmesh_refuse('SMOOS', 'out of stock', w.pid::text)
                   END AS refused
              FROM wanted w
              LEFT JOIN locked l ON l.id = w.pid
        ), taken AS (
            UPDATE products p SET stock = p.stock - c.qty, updated_at = now()
              FROM checked c
             WHERE p.id = c.pid AND c.refused IS NULL
            RETURNING c.pid, c.qty, c.price, c.currency
        ), kept AS (
            INSERT INTO stock_reservations (order_id, product_id, quantity, unit_price)
            SELECT p_order, t.pid, t.qty, t.price FROM taken t
        )
        SELECT t.pid, t.qty, t.price, t.currency FROM taken t ORDER BY t.pid;
        RETURN;
    END IF;
    RETURN QUERY
        SELECT r.product_id, r.quantity, r.unit_price, p.currency
          FROM stock_reservations r JOIN products p ON p.id = r.product_id
         WHERE r.order_id = p_order
         ORDER BY r.product_id;
END;
$$;
