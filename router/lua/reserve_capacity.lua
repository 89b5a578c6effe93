-- A router's reservation of a capped variant's units: it decides web and channels
-- assignments locally from its reservation (the decision never waits on Redis) and
-- tops it up here in the background. Units it used move from its reservation to the
-- used count; a reservation not renewed before it expires counts as free for the
-- others (a router that stopped); a reservation of 0 gives the rest back.
--
-- KEYS[1]  capacity        croupier:{exp}:capacity  hash <variant> → units used;
--                          lease|<variant>|<router> → "units|expires (unix ms)"
--
-- ARGV[1]  router          the router's id (random per process)
-- ARGV[2]  variant         the capped variant
-- ARGV[3]  cap             its capacity
-- ARGV[4]  used            units of the reservation the router used since its last call
-- ARGV[5]  want            the reservation the router wants to hold from now on
-- ARGV[6]  now             unix ms
-- ARGV[7]  ttl             ms the reservation lives unless renewed
--
-- Returns the change of the router's reservation (negative: units given back or, when
-- others took more than was free while it had lapsed, taken away).

local capacity = KEYS[1]
local router, variant, cap = ARGV[1], ARGV[2], tonumber(ARGV[3])
local used, want, now, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])

local own_field = 'lease|' .. variant .. '|' .. router
local total_used = tonumber(redis.call('HGET', capacity, variant) or '0')
if used > 0 then
  total_used = redis.call('HINCRBY', capacity, variant, used)
end
local own = 0
local others = 0
local all = redis.call('HGETALL', capacity)
for i = 1, #all, 2 do
  local v = string.match(all[i], '^lease|(.*)|[^|]*$')
  if v == variant then
    local units, expires = string.match(all[i + 1], '^(%-?%d+)|(%d+)$')
    if all[i] == own_field then
      own = tonumber(units or '0')
    elseif units and tonumber(expires) >= now then
      others = others + tonumber(units)
    elseif units then
      redis.call('HDEL', capacity, all[i])  -- a stopped router's: free again
    end
  end
end
own = math.max(own - used, 0)
local free = cap - total_used - others - own
local delta = math.max(math.min(want - own, free), -own)
own = own + delta
if own > 0 then
  redis.call('HSET', capacity, own_field, own .. '|' .. (now + ttl))
else
  redis.call('HDEL', capacity, own_field)
end
return delta
