-- Give a lease up (a graceful stop), so another router takes it at once instead
-- of when it lapses; only the holder's token releases it.
--
-- KEYS[1]  lease           {croupier:alerts}:lease (or another job's)   the holder's token
--
-- ARGV[1]  token           the caller's token
--
-- Returns 1 when released, 0 when the caller did not hold it.

local lease = KEYS[1]
local token = ARGV[1]
if redis.call('GET', lease) == token then
  redis.call('DEL', lease)
  return 1
end
return 0
