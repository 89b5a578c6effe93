-- Store a trained model version: its record (figures, verdict, data range) always;
-- its document, made the experiment's current model, only when accepted. The check
-- that the current model is still the one the candidate was judged against and the
-- write are one step, so two trainings finishing together cannot both replace it.
--
-- KEYS[1]  model           croupier:{exp}:model          hash doc, version (current), seq, through, attempted
-- KEYS[2]  versions        croupier:{exp}:modelversions  hash version -> its record (JSON)
-- KEYS[3]  docs            croupier:{exp}:modeldocs      hash version -> its document (JSON), accepted ones
--
-- ARGV[1]  doc             the model's document (JSON); '' for a rejected one
-- ARGV[2]  record          the version's record (JSON)
-- ARGV[3]  accept          1 make it current, 0 store the record only
-- ARGV[4]  expected        the current version it was judged against (0: none), or '*' (no check)
-- ARGV[5]  through         the id of the last event the round read ('' leaves it)
-- ARGV[6]  attempted       when the round ran (epoch seconds)
-- ARGV[7]  keep_docs       documents kept for rollback (the current one always stays)
-- ARGV[8]  keep_records    records kept
--
-- Returns {version, 1} accepted, {version, 0} stored as rejected, {-1, current}
-- when the current version is no longer ``expected`` (nothing written).

local model, versions, docs = KEYS[1], KEYS[2], KEYS[3]
local doc, record, accept, expected = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local through, attempted = ARGV[5], ARGV[6]
local keep_docs, keep_records = tonumber(ARGV[7]), tonumber(ARGV[8])

local current = tonumber(redis.call('HGET', model, 'version') or '0')
if accept == '1' and expected ~= '*' and current ~= tonumber(expected) then
  return {-1, current}
end

-- the oldest versions of a hash beyond ``keep`` go, never ``spare``
local function trim(key, keep, spare)
  local held = redis.call('HKEYS', key)
  if #held <= keep then
    return
  end
  local numbers = {}
  for _, v in ipairs(held) do
    numbers[#numbers + 1] = tonumber(v)
  end
  table.sort(numbers)
  local excess = #numbers - keep
  for _, v in ipairs(numbers) do
    if excess <= 0 then
      break
    end
    if v ~= spare then
      redis.call('HDEL', key, tostring(v))
      excess = excess - 1
    end
  end
end

local version = redis.call('HINCRBY', model, 'seq', 1)
redis.call('HSET', versions, version, record)
redis.call('HSET', model, 'attempted', attempted)
if through ~= '' then
  redis.call('HSET', model, 'through', through)
end
if accept == '1' then
  redis.call('HSET', docs, version, doc)
  redis.call('HSET', model, 'doc', doc, 'version', version)
  current = version
end
trim(docs, keep_docs, current)
trim(versions, keep_records, current)
return {version, accept == '1' and 1 or 0}
