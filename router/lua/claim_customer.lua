-- Claim a customer's assignment: compare-and-set, so concurrent first calls (and
-- concurrent reassignments) agree on one assignment.
--
-- KEYS[1]  customer        croupier:{exp}:cust:<customer>
--
-- ARGV[1]  expected        the value the caller read ('' when it found none); an
--                          absent key (none yet, or expired) is claimed whatever it says
-- ARGV[2]  drawn           the assignment the caller drew (JSON)
-- ARGV[3]  ttl             seconds the assignment lives
--
-- Returns {1, drawn} when the claim won, {0, <value another caller wrote first>}
-- otherwise.

local customer = KEYS[1]
local expected, drawn, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])

local current = redis.call('GET', customer)
if current and current ~= expected then
  return {0, current}
end
redis.call('SET', customer, drawn, 'EX', ttl)
return {1, drawn}
