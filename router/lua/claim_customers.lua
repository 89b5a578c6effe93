-- Claim many customers' assignments at once (a chunk of a customer list): for each,
-- claim-if-absent in its hash bucket, and, for a variant with a capacity, take one
-- unit of it. The same records as claim_customer.lua (the channels API), so a customer
-- assigned by either keeps that assignment in both.
--
-- KEYS[1]  capacity        croupier:{exp}:capacity  hash <variant> → units used;
--                          lease|<variant>|<router> → "units|expires (unix ms)" a router holds
-- KEYS[2]  buckets         croupier:{exp}:custs:<n>, the first of the buckets; the others follow
--                          as KEYS[3], KEYS[4], ... (every bucket a claim names)
--
-- ARGV[1]  ttl             seconds a bucket lives after its latest claim
-- ARGV[2]  now             unix ms (leases past it are not counted)
-- ARGV[3]  caps            lines "<variant>\t<capacity>\n" of the capped variants
-- ARGV[4]  claims          lines "<customer>\t<bucket>\t<drawn>\n": bucket is the 1-based
--                          index among the buckets (KEYS[1 + bucket]); drawn a record
--                          "variant|visitor|issued|propensity|segment|features"
--
-- Returns one string per claim, in order: '' the drawn record was claimed; '!' the
-- drawn variant has no capacity left (nothing claimed); otherwise the record the
-- customer already had (nothing claimed).

local capacity = KEYS[1]
-- the first bucket: a claim's bucket is KEYS[1 + its index]
local buckets = KEYS[2]
local ttl, now, caps, claims = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]

local left = {}  -- capped variant → units still free, once known
local capped = {}
for variant, cap in string.gmatch(caps, '([^\t\n]*)\t([^\t\n]*)\n') do
  capped[variant] = tonumber(cap)
end
local leases = nil
local function free(variant)
  if left[variant] == nil then
    if leases == nil then  -- the units routers reserved and have not used yet
      leases = {}
      local all = redis.call('HGETALL', capacity)
      for i = 1, #all, 2 do
        local v = string.match(all[i], '^lease|(.*)|[^|]*$')
        if v then
          local units, expires = string.match(all[i + 1], '^(%-?%d+)|(%d+)$')
          if units and tonumber(expires) >= now then
            leases[v] = (leases[v] or 0) + tonumber(units)
          end
        end
      end
    end
    local used = tonumber(redis.call('HGET', capacity, variant) or '0')
    left[variant] = capped[variant] - used - (leases[variant] or 0)
  end
  return left[variant]
end

local out, taken, touched = {}, {}, {}
for customer, index, drawn in string.gmatch(claims, '([^\t\n]*)\t([^\t\n]*)\t([^\t\n]*)\n') do
  local bucket = KEYS[1 + tonumber(index)]
  local variant = string.match(drawn, '^([^|]*)|')
  if capped[variant] == nil then
    -- one command for a new customer, the common case of a list sent once
    if redis.call('HSETNX', bucket, customer, drawn) == 1 then
      touched[bucket] = true
      out[#out + 1] = ''
    else
      out[#out + 1] = redis.call('HGET', bucket, customer)
    end
  else
    local current = redis.call('HGET', bucket, customer)
    if current then
      out[#out + 1] = current
    elseif free(variant) < 1 then
      out[#out + 1] = '!'
    else
      left[variant] = left[variant] - 1
      taken[variant] = (taken[variant] or 0) + 1
      redis.call('HSET', bucket, customer, drawn)
      touched[bucket] = true
      out[#out + 1] = ''
    end
  end
end
for variant, n in pairs(taken) do
  redis.call('HINCRBY', capacity, variant, n)
end
for bucket in pairs(touched) do
  redis.call('EXPIRE', bucket, ttl)
end
return out
