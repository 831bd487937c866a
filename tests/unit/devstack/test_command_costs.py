"""command_costs: two INFO commandstats readings as each command's calls and µs a unit."""

from __future__ import annotations

from services.devstack.probes import command_costs


def test_the_difference_per_unit_most_costly_first_and_the_scripts_share() -> None:
    before = {"cmdstat_evalsha": {"calls": 10, "usec": 1_000},
              "cmdstat_zadd": {"calls": 40, "usec": 100},
              "cmdstat_get": {"calls": 5, "usec": 5}}
    after = {"cmdstat_evalsha": {"calls": 110, "usec": 31_000},
             "cmdstat_zadd": {"calls": 440, "usec": 1_300},
             "cmdstat_get": {"calls": 5, "usec": 5},  # did not run: left out
             "cmdstat_info": {"calls": 3, "usec": 90},
             "cmdstat_set": {"calls": 100, "usec": 300}}
    costs = command_costs(before, after, per=100)

    assert list(costs["commands"]) == ["evalsha", "zadd", "set", "info"]
    assert costs["commands"]["evalsha"] == {"calls": 100, "calls_per": 1.0, "usec_per": 300.0,
                                            "usec_per_call": 300.0}
    assert costs["commands"]["zadd"]["calls_per"] == 4.0
    assert costs["scripts_usec_per"] == 300.0
    # ZADD and SET, not INFO (the probes' own): 1,500 µs of commands
    assert costs["commands_usec_per"] == 15.0


def test_no_unit_of_work_divides_by_one() -> None:
    costs = command_costs({}, {"cmdstat_get": {"calls": 2, "usec": 4}}, per=0)
    assert costs["commands"]["get"]["usec_per"] == 4.0
