-- Append one processed chunk's results to a batch job, exactly once: a chunk is
-- appended only at its own position, so a chunk processed twice (a job resumed by
-- another router while the first was still at it) is written once.
--
-- KEYS[1]  job             croupier:{exp}:job:<id>       hash of the job's figures
-- KEYS[2]  output          croupier:{exp}:job:<id>:out   list, one item per processed chunk
--
-- ARGV[1]  index           the chunk's 0-based position
-- ARGV[2]  results         its JSON lines
-- ARGV[3]  increments      lines "<field>\t<amount>\n" of the job hash
--
-- Returns 1 when appended, 0 when the chunk was there already.

local job, output = KEYS[1], KEYS[2]
local index, results, increments = tonumber(ARGV[1]), ARGV[2], ARGV[3]

if redis.call('LLEN', output) ~= index then
  return 0
end
redis.call('RPUSH', output, results)
for field, amount in string.gmatch(increments, '([^\t\n]*)\t([^\t\n]*)\n') do
  redis.call('HINCRBY', job, field, amount)
end
return 1
