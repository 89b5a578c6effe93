-- Replace an experiment's document only if it is still the one the caller read
-- (compare-and-set), so concurrent admin calls lose nothing. One key, so it runs
-- the same on one Redis, behind Sentinel and on Redis Cluster (WATCH/MULTI does not
-- follow a key across cluster nodes).
--
-- KEYS[1]  experiment      croupier:{exp}:experiment   the experiment as JSON
--
-- ARGV[1]  expected        the document as the caller read it
-- ARGV[2]  replacement     the document to store
--
-- Returns 1 when replaced, 0 when the document changed since it was read (read
-- again and retry), -1 when the experiment does not exist.

local experiment = KEYS[1]
local expected, replacement = ARGV[1], ARGV[2]

local current = redis.call('GET', experiment)
if not current then
  return -1
end
if current ~= expected then
  return 0
end
redis.call('SET', experiment, replacement)
return 1
