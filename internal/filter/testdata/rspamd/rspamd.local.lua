-- A test symbol with a known score: "X-Petrel-Test: spammy" adds 9
-- points (rspamd's "add header" action, below "reject").
local reconf = config['regexp']
reconf['PETREL_TEST_SPAMMY'] = {
  re = 'X-Petrel-Test=/spammy/H',
  score = 9.0,
  description = 'Petrel test marker',
  group = 'headers',
}
