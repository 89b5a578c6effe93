-- Claim a customer's assignment: compare-and-set, so concurrent first calls (and
-- concurrent reassignments) agree on one assignment.
--
-- KEYS[1]  customer key    croupier:{exp}:cust:<customer>
--
-- ARGV[1]  expected        the value the caller read ('' when it found none); an
--                          absent key (none yet, or expired) is claimed whatever it says
-- ARGV[2]  new value       the assignment the caller drew (JSON)
-- ARGV[3]  ttl             seconds the assignment lives
--
-- Returns {1, ARGV[2]} when the claim won, {0, <value another caller wrote first>}
-- otherwise.

local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then
  return {0, current}
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
return {1, ARGV[2]}
