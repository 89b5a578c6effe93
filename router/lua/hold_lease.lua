-- Take or renew a lease: one router at a time does a job (delivering alerts,
-- retraining models: each job its own lease key).
-- The holder renews it well before it lapses; when the holder stops renewing
-- (stopped, crashed, cut off from Redis) the key expires and another router
-- takes it with SET NX PX.
--
-- KEYS[1]  lease           {croupier:alerts}:lease (or another job's)   the holder's token
--
-- ARGV[1]  token           the caller's token (random per process)
-- ARGV[2]  ttl             milliseconds the lease lasts from now
--
-- Returns 1 when the caller holds the lease (taken or renewed), 0 when another does.

local lease = KEYS[1]
local token, ttl = ARGV[1], ARGV[2]

local holder = redis.call('GET', lease)
if holder == token then
  redis.call('PEXPIRE', lease, ttl)
  return 1
end
if holder then
  return 0
end
if redis.call('SET', lease, token, 'NX', 'PX', ttl) then
  return 1
end
return 0
