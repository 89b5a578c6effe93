-- Claim one customer's assignment: compare-and-set, so concurrent first calls (and
-- concurrent reassignments) agree on one assignment. A customer's assignment is a field
-- of a hash bucket (router/store.py: customer_bucket), shared with the batch assignment
-- of customer lists (claim_customers.lua), so both read and write the same record.
--
-- KEYS[1]  bucket          croupier:{exp}:custs:<n>  hash customer → "variant|visitor|issued|propensity|segment|features"
--
-- ARGV[1]  customer        the customer id (the bucket's field)
-- ARGV[2]  expected        the value the caller read ('' when it found none); an
--                          absent field (none yet, or the bucket expired) is claimed whatever it says
-- ARGV[3]  drawn           the assignment the caller drew
-- ARGV[4]  ttl             seconds the bucket lives after its latest claim
--
-- Returns {1, drawn} when the claim won, {0, <value another caller wrote first>}
-- otherwise.

local bucket = KEYS[1]
local customer, expected, drawn, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])

local current = redis.call('HGET', bucket, customer)
if current and current ~= expected then
  return {0, current}
end
redis.call('HSET', bucket, customer, drawn)
redis.call('EXPIRE', bucket, ttl)
return {1, drawn}
