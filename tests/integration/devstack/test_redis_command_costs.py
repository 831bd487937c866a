"""command_costs on a real redis-server: a script's own commands counted in their entries and
inside the script's time, each command per unit of work."""

from __future__ import annotations

import redis

from services.devstack.probes import command_costs

SCRIPT = ("redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]); "
          "return redis.call('ZCOUNT', KEYS[1], 0, '+inf')")


def test_a_scripts_commands_are_counted_inside_it_and_per_unit(redis_client: redis.Redis) -> None:
    redis_client.config_resetstat()
    before = redis_client.info("commandstats")
    sha = redis_client.script_load(SCRIPT)
    for i in range(50):
        redis_client.evalsha(sha, 1, "costs:z", i, f"m{i}")
    redis_client.set("costs:plain", 1)
    costs = command_costs(before, redis_client.info("commandstats"), per=50)

    commands = costs["commands"]
    assert commands["evalsha"]["calls"] == 50
    assert commands["zadd"]["calls"] == 50 and commands["zcount"]["calls"] == 50
    assert commands["zadd"]["calls_per"] == 1.0
    assert commands["set"]["calls"] == 1
    assert costs["scripts_usec_per"] > 0
    # the script's ZADD and ZCOUNT run inside its time, so it is longer than theirs
    inside = sum(commands[c]["usec_per"] for c in ("zadd", "zcount"))
    assert costs["scripts_usec_per"] >= inside
    assert "script|load" in commands  # a subcommand, by Redis 7's own name
