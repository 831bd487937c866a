"""docs/reliability.md's outcome tables, generated from the committed chaos reports (JSON) so
the page can only show measured numbers (tests/unit/docs/test_reliability_docs.py checks it)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.chaos.misses import START_S, by_cause, cause


def _load(folder: Path, name: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((folder / f"{name}.json").read_text())
    return report


def broker_crash_table(folder: Path) -> str:
    report = _load(folder, "broker_crash")
    r, s = report["results"], report["settings"]
    rows = [
        ("load", f"{s['rate_requests_per_s']:.0f} requests/s x {s['events_per_request']} events, "
                 f"{s['duration_s']:.0f} s open loop; {r['victim']} killed at "
                 f"{r['killed_at_s']} s, restarted at {s['restart_at_s']:.0f} s"),
        ("answers", _counts(r["statuses"])),
        ("events acknowledged (202, or accepted inside a 503)", f"{r['events_acknowledged']:,}"),
        ("events on the topic afterwards", f"{r['events_on_topic']:,}"),
        ("**lost** (acknowledged, not on the topic)", f"**{r['lost']}**"),
        ("stored though not acknowledged (client told to retry)",
         f"{r['events_on_topic_not_acknowledged']:,}"),
        ("duplicate records on the topic", f"{r['duplicate_records_on_topic']}"),
        ("counted in the online features", f"{r['applied_to_online_features']:,} "
                                           "(each stored event exactly once)"),
        ("503 without Retry-After", f"{r['refused_503_without_retry_after']}"),
        ("refused requests, sent relative to the kill",
         "none refused" if r["first_not_202_after_kill_s"] is None else
         f"from {r['first_not_202_after_kill_s']} s to {r['last_not_202_after_kill_s']} s "
         "(one sent just before the kill can still be waiting for its ack)"),
        ("killed broker fenced by the controller (its log)",
         f"{r['fenced_after_kill_s']} s after the kill (broker.session.timeout.ms "
         f"{s['broker_session_timeout_ms']}, heartbeat {s['broker_heartbeat_interval_ms']} ms); "
         f"{r['partitions_moved_at_fencing']} partitions moved in that step; fencings while it "
         f"was down: {r['fencings_while_down']}"),
        ("killed broker was the active controller",
         "no" if r["controller_elected_after_kill_s"] is None
         else f"yes: a new one elected {r['controller_elected_after_kill_s']} s after the kill"),
        ("first 202 to a request sent after the kill", f"{r['kill_to_first_202_s']} s after it"),
        ("restarted broker back in every ISR", f"{r['restart_to_in_sync_s']} s"),
        ("latency p50 / p99 / max", _p50_p99_max(r["latency_ms"])),
    ]
    if "answers_202_spooled" in r:  # reports before ingest's spool lack it
        rows.append(("answered 202 from ingest's spool (stored on its disk, forwarded after)",
                     f"{r['answers_202_spooled']} answers, {r['events_spooled']:,} events; the "
                     f"spool was empty {r['spool_drained_after_load_s']} s after the load"))
    if "late_answers" in r:  # reports before ingest's load shedding lack it
        late = r["late_answers"]
        refused = late["refused_503_latency_ms"]
        rows += [
            (f"answers past ingest's budget ({late['budget_ms']:.0f} ms)",
             f"{late['over_budget']} ({late['over_budget_sent_in_the_outage']} sent from 1 s "
             f"before the kill to the restart); {late['over_1s']} past 1 s"),
            ("503 latency p50 / max", "no 503" if refused is None
             else f"{refused['p50']} / {refused['max']} ms (shed after "
                  f"{s['ingest_shed_after_s']:g} s of unacknowledged writes)"),
        ]
    return _table(rows, report)


def broker_session_table(folder: Path) -> str:
    """Fault 1 run in turns with Kafka's default broker session and with the cluster's shorter
    one, in one session: the fencing and the client-visible gap side by side."""
    reports = _in_order(folder)
    lines = ["| started (UTC) | session / heartbeat | victim | load average | new controller "
             "after the kill | fenced after the kill | first 202 after the kill | answers | "
             "latency p99 / max |", "|---|---|---|---|---|---|---|---|---|"]
    for report in reports:
        r, s = report["results"], report["settings"]
        lines.append(
            f"| {report['started'][11:19]} | {s['broker_session_timeout_ms']} / "
            f"{s['broker_heartbeat_interval_ms']} ms | {r['victim']} | "
            f"{report['machine']['load_average_at_start'][0]:.1f} | "
            + ("- (not the controller)" if r["controller_elected_after_kill_s"] is None
               else f"{r['controller_elected_after_kill_s']} s")
            + f" | {r['fenced_after_kill_s']} s | {r['kill_to_first_202_s']} s | "
            + _counts(r["statuses"])
            + f" | {r['latency_ms']['p99']:,.0f} / {r['latency_ms']['max']:,.0f} ms |")
    first, last = reports[0], reports[-1]
    lines.append(f"\n{len(reports)} runs of `tests/chaos/test_broker_crash.py`, "
                 f"{first['started'][:10]}, on {first['machine']['nproc']} shared cores "
                 f"({first['machine']['cpu_model']}), Kafka {first['versions']['kafka']}, "
                 f"commits {first['commit'][:10]} to {last['commit'][:10]} (the test gained "
                 "its log fields between them; only the template's two lines were swapped "
                 "between runs); other work shared the cores.")
    return "\n".join(lines)


def redis_master_crash_table(folder: Path) -> str:
    report = _load(folder, "redis_master_crash")
    r, s = report["results"], report["settings"]
    f, c = r["fraud"], r["recommender"]
    rows = [
        ("load", f"{_both_services_load(s)}; master {r['victim']} killed at "
                 f"{r['killed_at_s']} s"),
        ("failover gap (kill -> replica promoted)", f"{r['failover_gap_s']} s "
                                                    f"(cluster-node-timeout "
                                                    f"{s['cluster_node_timeout_ms']} ms)"),
        ("fraud answers", _counts(f["statuses"])),
        ("fraud answers flagged `degraded`", f"{f['degraded_answers']} "
                                             f"({f['degraded_answers_in_gap']} of "
                                             f"{f['requests_in_gap']} in the gap)"),
        ("last degraded fraud answer after the kill",
         f"{f['last_degraded_answer_after_kill_s']} s"),
        ("fraud p50 / p99 / max", f"{_p50_p99_max(f['latency_ms'])}; "
                                  f"{f['within_50ms_share']:.1%} inside 50 ms"),
        ("recommender answers", _counts(c["statuses"])),
        ("recommender answers with `fallbacks`", f"{c['fallback_answers']} "
                                                 f"({c['fallback_answers_in_gap']} of "
                                                 f"{c['requests_in_gap']} in the gap)"),
        ("last fallback answer after the kill", f"{c['last_fallback_answer_after_kill_s']} s"),
        ("recommender p50 / p99 / max", _p50_p99_max(c["latency_ms"])),
    ]
    return _table(rows, report)


def service_crash_table(folder: Path) -> str:
    report = _load(folder, "service_crash")
    r, s = report["results"], report["settings"]
    rows = [("load", f"{_both_services_load(s)}, {s['workers']} workers each; one worker of "
                     f"each killed at {r['killed_at_s']} s")]
    for name in ("fraud", "recommender"):
        side, replaced = r[name], r["replaced"][name]
        kinds = _counts(side["first_attempt_error_kinds"])
        rows += [
            (f"{name}: new worker started after", f"{replaced['replaced_after_s']} s"),
            (f"{name}: first attempts that failed (a client without retry)",
             f"{side['first_attempt_errors']} of {side['requests']}"
             + (f" ({kinds})" if kinds else "")),
            (f"{name}: **errors after one retry**", f"**{side['errors_after_retry']}**; "
             + _counts(side["statuses"])),
            (f"{name}: p50 / p99 / max", f"{_p50_p99_max(side['latency_ms'])}; p99 in the 2 s "
             f"after the kill {side['latency_ms']['p99_in_2s_after_kill']} ms; "
             f"{side['within_budget_share']:.1%} inside {side['budget_ms']:.0f} ms"),
        ]
    return _table(rows, report)


def postgres_failover_table(folder: Path) -> str:
    """The PostgreSQL primary killed under fraud load: what reached the record, how fast."""
    report = _load(folder, "postgres_failover")
    r, s = report["results"], report["settings"]
    timing = s["failover_timing"]
    rows = [
        ("load", f"fraud {s['rate_requests_per_s']:.0f} req/s for {s['duration_s']:.0f} s, "
                 f"open loop; the primary ({r['victim']}) killed at {r['killed_at_s']} s, "
                 f"started again at {s['restart_at_s']:.0f} s"),
        ("fraud answers", f"{_counts(r['statuses'])}; p50 / p99 / max "
                          f"{_p50_p99_max(r['fraud_latency_ms'])}"),
        ("decisions on `fraud-decisions`", f"{r['decisions_on_topic']:,} "
                                           f"({r['decision_records_on_topic']:,} records)"),
        ("**in PostgreSQL, by transaction id**", f"**{r['decisions_in_postgres']:,}; lost "
                                                 f"{r['lost']}**, a second row "
                                                 f"{r['rows_beyond_one_per_transaction']}"),
        ("duplicates absorbed (handled again, kept once)",
         f"{r['duplicates_absorbed']:,} of {r['records_events_handled']:,} handled"),
        ("kill -> a server takes writes (promotion, as a client sees it)",
         f"{r['kill_to_writable_s']} s ({r['promoted']} promoted)"),
        ("kill -> the records service writing again", f"{r['kill_to_records_writing_s']} s; "
                                                      f"{r['records_consumer_retries']} retried "
                                                      "batches, the process never ended"
                                                      if r["records_process_alive"] else
                                                      "the process ended"),
        ("load end -> every decision in PostgreSQL", f"{r['load_end_to_all_in_postgres_s']} s"),
        ("old primary started again -> streaming standby",
         f"{r['restart_to_streaming_standby_s']} s"),
        ("failover settings", f"health check every {timing['pgautofailover.health_check_period']}"
                              f", unhealthy after "
                              f"{timing['pgautofailover.node_considered_unhealthy_timeout']}, "
                              f"demote timeout {timing['pgautofailover.primary_demote_timeout']}"),
    ]
    table = _table(rows, report)
    return table.replace(f"Redis {_redis_version(report)}", s["postgres"].split(":")[0])


def slow_dependency_table(folder: Path) -> str:
    report = _load(folder, "slow_dependency")
    r, s = report["results"], report["settings"]
    rows = [("load", f"{_both_services_load(s)}; every master paused "
                     f"{s['redis_slow_s']:.0f} s from {r['redis_slow_at_s']} s, the model server "
                     f"stopped {s['model_slow_s']:.0f} s from {r['model_server_stalled_at_s']} s")]
    for phase, title, flags in (("redis_slow", "Redis paused", ("degraded", "feature_store")),
                                ("model_server_stalled", "model server stopped",
                                 ("degraded", "model"))):
        for name, flag in zip(("fraud", "recommender"), flags, strict=True):
            w = r[phase][name]
            rows.append((f"{title}: {name}",
                         f"{w['requests']} requests, "
                         + _counts(w["statuses"])
                         + f"; {w[flag + '_answers']} flagged `{flag}`; p50 / p99 {w['p50_ms']} / "
                         f"{w['p99_ms']} ms, {w['within_budget_share']:.0%} inside budget; "
                         f"p99 after the first second {w['p99_after_first_1s_ms']} ms; "
                         + ("none over budget" if w["last_over_budget_sent_after_s"] is None
                            else f"the last over budget sent "
                                 f"{w['last_over_budget_sent_after_s']} s in")))
    for name in ("fraud", "recommender"):
        w = r["whole_run"][name]
        rows.append((f"whole run: {name}", f"p50 / p99 {w['p50_ms']} / {w['p99_ms']} ms, "
                                           f"{w['within_budget_share']:.1%} inside "
                                           f"{w['budget_ms']:.0f} ms; "
                     + _counts(w["statuses"])))
    return _table(rows, report)


def scale_up_table(folder: Path) -> str:
    report = _load(folder, "scale_up")
    r, s = report["results"], report["settings"]
    rows = [
        ("load", f"{s['low_rate_per_s']:.0f} requests/s for {s['low_s']:.0f} s, then "
                 f"{s['high_rate_per_s']:.0f} requests/s for {s['high_s']:.0f} s, open loop"),
        ("workers", f"{r['workers_before']} -> {r['workers_after']} (steps "
                    f"{r['steps']}, the first {r['first_step_after_load_step_s']} s after the "
                    f"load step); restarts {r['restarts']}"),
        ("p50 / p99 before the step", f"{r['before_step']['p50']} / {r['before_step']['p99']} ms"),
        ("p50 / p99, first 10 s after it", f"{r['first_10s_after_step']['p50']} / "
                                           f"{r['first_10s_after_step']['p99']} ms"),
        ("p50 / p99, last 20 s", f"{r['last_20s']['p50']} / {r['last_20s']['p99']} ms "
                                 f"(budget {r['budget_ms']:.0f} ms)"),
        ("answers", _counts(r["statuses"])),
    ]
    return _table(rows, report)


def redis_master_crash_runs_table(folder: Path) -> str:
    """Fault 2 run again and again on one commit: whether fraud came back every time."""
    reports = _in_order(folder)
    lines = ["| started (UTC) | victim | load average | failover gap | last degraded fraud "
             "answer after the kill | fraud `degraded` in the last 5 s | recommender's last "
             "fallback after the kill | answers |", "|---|---|---|---|---|---|---|---|"]
    for report in reports:
        r = report["results"]
        f, c = r["fraud"], r["recommender"]
        lines.append(
            f"| {report['started'][11:19]} | {r['victim']} | "
            f"{report['machine']['load_average_at_start'][0]:.1f} | {r['failover_gap_s']} s | "
            f"{f['last_degraded_answer_after_kill_s']} s | {f['degraded_answers_in_last_5s']} | "
            f"{c['last_fallback_answer_after_kill_s']} s | {_both_answers(f, c)} |")
    first = reports[0]
    commits = sorted({report["commit"][:10] for report in reports})
    lines.append(f"\n{len(reports)} runs of `tests/chaos/test_redis_master_crash.py`, "
                 f"{first['started'][:10]}, on {first['machine']['nproc']} shared cores "
                 f"({first['machine']['cpu_model']}), Redis "
                 f"{_redis_version(first)}, redis-py "
                 f"{first['versions']['redis_py']}; commit {', '.join(commits)}; each under the "
                 "machine's lock for heavy runs.")
    return "\n".join(lines)


def runs_in_turns(folder: Path, pattern: str) -> list[tuple[str, dict[str, Any]]]:
    """Runs made in turns, oldest first: each subfolder of `folder` is one code (its name),
    each file in it matching `pattern` one run's report."""
    return sorted(((code.name, json.loads(p.read_text()))
                   for code in folder.iterdir() if code.is_dir()
                   for p in code.glob(pattern)),
                  key=lambda run: str(run[1]["started"]))


def turns_footer(runs: list[tuple[str, dict[str, Any]]], test: str, fault: str,
                 selection: str = "") -> str:
    """The line under a table of runs in turns: how many, of what (`selection`: which of the
    test file's tests, if not all), when, on what, at what load, with which `fault`."""
    first = runs[0][1]
    return (f"\n{len(runs)} runs of `{test}`{selection} in turns, {first['started'][:10]}, on "
            f"{first['machine']['nproc']} shared cores ({first['machine']['cpu_model']}), Redis "
            f"{_redis_version(first)}, redis-py "
            f"{first['versions']['redis_py']}; "
            f"{first['settings']['rate_per_service_per_s']:.0f} requests/s to each service"
            f"{fault}; each under the machine's lock for heavy runs.")


def node_breakers_table(folder: Path) -> str:
    """Fault 2 before and after the breakers per master, run in turns: each subfolder of
    `folder` is one code (its name in the first column), each JSON in it one run."""
    runs = runs_in_turns(folder, "*.json")
    lines = ["| code | started (UTC) | load average | failover gap | fraud `degraded` | "
             "of them in the gap | last degraded fraud answer after the kill | recommender "
             "`fallbacks` | of them in the gap | last fallback after the kill | answers |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for code, report in runs:
        f, c = report["results"]["fraud"], report["results"]["recommender"]
        lines.append(_fault_2_row(code, report, [
            *_flagged(f, "degraded"), f"{f['last_degraded_answer_after_kill_s']} s",
            *_flagged(c, "fallback"), f"{c['last_fallback_answer_after_kill_s']} s"]))
    settings = runs[0][1]["settings"]
    victims = sorted({report["results"]["victim"] for _, report in runs})
    lines.append(turns_footer(runs, "tests/chaos/test_redis_master_crash.py",
                              f" for {settings['duration_s']:.0f} s, {', '.join(victims)} "
                              f"killed at {settings['kill_at_s']:.0f} s"))
    return "\n".join(lines)


def onset_table(folder: Path) -> str:
    """Fault 4's paused-Redis window before and after a change, run in turns: each subfolder of
    `folder` is one code (its name in the first column), each slow_dependency JSON in it one
    run."""
    runs = runs_in_turns(folder, "slow_dependency*.json")
    lines = ["| code | started (UTC) | load average | fraud p50 / max | fraud over 50 ms | "
             "fraud's last over budget sent | fraud p99 after the first second | recommender "
             "p50 / max | recommender over 100 ms | its last over budget sent | recommender p99 "
             "after the first second |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for code, report in runs:
        cells = _turn_cells(code, report)
        for name in ("fraud", "recommender"):
            w = report["results"]["redis_slow"][name]
            last = w["last_over_budget_sent_after_s"]
            cells += [f"{w['p50_ms']} / {w['max_ms']} ms",
                      f"{w['over_budget']} of {w['requests']}",
                      "none" if last is None else f"{last} s in",
                      f"{w['p99_after_first_1s_ms']} ms"]
        lines.append(_row(cells))
    settings = runs[0][1]["settings"]
    lines.append(turns_footer(runs, "tests/chaos/test_slow_dependency.py",
                              f", every master paused {settings['redis_slow_s']:.0f} s from "
                              f"{settings['redis_slow_at_s']:.0f} s; the paused window's "
                              "requests only"))
    return "\n".join(lines)


def trending_master_table(folder: Path) -> str:
    """Fault 2 with the trending list's master killed, before and after the recommender read
    its users' keys without the list: each subfolder of `folder` is one code (its name in the
    first column), each JSON in it one run, in the order they started."""
    runs = runs_in_turns(folder, "*.json")
    lines = ["| code | started (UTC) | load average | failover gap | recommender `fallbacks` "
             "| of them in the gap | to users on live masters | recommender p50 / p99 / max | "
             "p99 in the gap | last fallback after the kill | fraud `degraded` | answers |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for code, report in runs:
        r = report["results"]
        f, c, e = r["fraud"], r["recommender"], r["recommender_users_elsewhere"]
        latency = c["latency_ms"]
        lines.append(_fault_2_row(code, report, [
            *_flagged(c, "fallback"), f"{e['fallback_answers']} of {e['requests']}",
            _p50_p99_max(latency),
            f"{latency['p99_in_gap']} ms", f"{c['last_fallback_answer_after_kill_s']} s",
            f"{f['degraded_answers']} of {f['requests']}"]))
    settings = runs[0][1]["settings"]
    victims = sorted({report["results"]["victim"] for _, report in runs})
    users = sorted({report["results"]["recommender_users_on_victim"] for _, report in runs})
    lines.append(turns_footer(runs, "tests/chaos/test_redis_master_crash.py",
                              f" for {settings['duration_s']:.0f} s, the trending list's master "
                              f"({', '.join(victims)}) killed at {settings['kill_at_s']:.0f} s; "
                              f"{users[0]} to {users[-1]} of the {settings['users']} users' keys "
                              "on it (their ids are new each run)", " (`-k trending`)"))
    return "\n".join(lines)


def failover_repro_table(path: Path) -> str:
    """benchmarks/redis_failover_repro.py's runs: fraud's store alone on a 3+3 cluster whose
    master is killed, before and after the fix, and where the client's default node was."""
    runs: list[dict[str, Any]] = json.loads(path.read_text())
    lines = ["| code | victim | load average | victim was the default node at the kill | "
             "promoted after the kill | first success after the kill | last 5 s | default "
             "node dead at the end |", "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        last = run["outcomes_last_5s"]
        lines.append(
            f"| {run['label']} | {run['victim']} | {run['load_average'][0]:.1f} | "
            f"{'yes' if run['victim_was_default_node_at_kill'] else 'no'} | "
            f"{run['promoted_at_s'] - run['killed_at_s']:.2f} s | "
            + ("never" if run["first_success_after_kill_s"] is None
               else f"{run['first_success_after_kill_s']} s")
            + " | " + ", ".join(f"{v} {k}" for k, v in last.items())
            + f" | {'yes' if run['default_node_is_dead_at_end'] else 'no'} |")
    first = runs[0]
    lines.append(f"\n{len(runs)} runs, {first['started'][:16].replace('T', ' ')} UTC on, "
                 f"{first['cpus']} shared cores, Redis {first['redis_server'][2:]}, redis-py "
                 f"{first['redis_py']}; {first['threads']} threads calling every 20-50 ms, the "
                 f"card's master killed at {first['kill_at_s']:g} s, {first['seconds']:g} s a "
                 "run; load average taken at each run's end.")
    return "\n".join(lines)


def poison_table(folder: Path) -> str:
    report = _load(folder, "poison_events")
    r = report["results"]
    rows = [(key, f"{value['reason']} ({value['seen_after_s']} s)")
            for key, value in r["by_topic"].items()]
    rows += [("dead letters found / expected",
              f"{r['dead_letters_found']} / {r['dead_letters_expected']}"),
             ("good events behind the poison, applied",
              f"{r['good_events_applied']} / {r['good_events_after_poison']} within "
              f"{r['good_events_applied_within_s']} s")]
    return _table(rows, report, header=("topic / poison / consumer group",
                                        "reason in `dlq.reason` (seen after)"))


def availability_table(folder: Path) -> str:
    """Fault 6: the soak's share answered 2xx inside budget, per service and in all."""
    report = _load(folder, "availability_soak")
    r, s = report["results"]["availability"], report["settings"]
    kills = [f["what"].removeprefix("kill ") for f in report["results"]["faults"]
             if f["what"].startswith("kill")]
    not_2xx = sum(1 for second in report["per_second"]
                  if any(not 200 <= int(k) < 300 for k in second["statuses"]))
    budgets = ", ".join(f"{name} {ms:.0f} ms" for name, ms in s["budget_ms"].items())
    rows = [
        ("load", f"{s['rate_per_service_per_s']:.0f} requests/s to each of ingest, fraud and the "
                 f"recommender, {s['soak_s']:.0f} s open loop; client retries: "
                 f"{s['client_retries']}"),
        ("faults", f"{len(kills)} in {s['cycle_s']:.0f}-s cycles (a broker at +30 s, "
                   "restarted 10 s later; a Redis master at +90 s, restarted 8 s later; a "
                   "worker of fraud and of the recommender at +150 s): " + ", ".join(kills)),
        ("budgets", budgets),
    ]
    if "broker_fencings" in report["results"]:  # soaks before the shorter broker session lack it
        rows.append(("each killed broker fenced after (controller's log; * : it was the active "
                     "controller; fencings while it was down)",
                     ", ".join(f"{f['victim']} {f['fenced_after_kill_s']} s"
                               + ("*" if f["controller_elected_after_kill_s"] is not None else "")
                               + f" ({f['fencings_while_down']})"
                               for f in report["results"]["broker_fencings"])))
    if "live_brokers_fenced" in report["results"]:  # soaks before the election timeout lack it
        live = report["results"]["live_brokers_fenced"]
        rows.append(("live brokers fenced by mistake, the whole run (the controllers' logs)",
                     ", ".join(f"kafka-{f['broker']} at {f['at'][11:19]}" for f in live)
                     if live else "none"))
    for name in ("ingest", "fraud", "recommender"):
        x = r[name]
        rows.append((f"{name}: answered 2xx inside budget",
                     f"{x['good']:,} of {x['requests']:,} = {100 * x['share']:.2f} %; "
                     + _counts(x["statuses"], grouped=True)))
    if "ingest_202s_spooled" in report["results"]:  # soaks before ingest's spool lack it
        rows.append(("ingest: posts answered 202 from its spool (on its disk, forwarded once "
                     "the brokers acknowledged)", f"{report['results']['ingest_202s_spooled']:,}"))
    rows += [
        ("**availability, all requests**",
         f"**{100 * r['all']['share']:.2f} %** ({r['all']['good']:,} of "
         f"{r['all']['requests']:,}); goal {100 * report['results']['goal']:.1f} %"),
        ("seconds with an answer that was not a 2xx", f"{not_2xx} of {len(report['per_second'])}"),
    ]
    if "with_ingest_retry" in r:  # soaks before ingest's documented retry was modelled lack it
        w = r["with_ingest_retry"]
        i = w["ingest"]
        after = i["accepted_after_ms"]
        rows += [
            ("ingest, counted by its last attempt (a 503's Retry-After waited, the batch sent "
             f"again; at most {s['ingest_attempts']} attempts)",
             f"{i['good']:,} of {i['requests']:,} = {100 * i['share']:.2f} %; {i['retried']} "
             f"retried, {i['never_accepted']} never accepted"
             + (f"; a retried batch accepted {after['p50'] / 1000:.1f} s (p50) to "
                f"{after['max'] / 1000:.1f} s (max) after its first send" if after else "")),
            ("availability with ingest's documented retry",
             f"{100 * w['all']['share']:.2f} % ({w['all']['good']:,} of "
             f"{w['all']['requests']:,})"),
        ]
    return _table(rows, report)


def soak_misses_table(path: Path) -> str:
    """A soak's misses by cause and service (tests/chaos/misses.py), with what the probes saw
    in the whole run: Redis forks, the brokers' GC pauses, the CPU nobody in the run used."""
    report = json.loads(path.read_text())
    r = report["results"]
    services = ("ingest", "fraud", "recommender")
    lines = ["| cause (the first that applies) | ingest | fraud | recommender | all |",
             "|---|---|---|---|---|"]
    # each miss's record classified by today's rules (a run made before one changed says so)
    causes = by_cause([{**m, "cause": cause(m, report["machine"]["nproc"])}
                       for m in r["misses"]], services)
    for why, row in causes.items():
        lines.append(f"| {why} | " + " | ".join(str(row[s]) for s in services)
                     + f" | {sum(row.values())} |")
    forks = r["probes"]["redis_forks"]
    pauses = r["probes"]["kafka_gc_pauses"]
    cpu = r["probed"]["cpu_per_second"]
    others = sum(c["groups"]["others"] for c in cpu) / len(cpu)
    busy = sum(c["busy"] for c in cpu) / len(cpu)
    longest_fork = max((d["fork_ms"] for node in r["probed"]["redis_forks"].values()
                        for d in node), default=0)
    lines.append(
        f"\n{sum(f['forks'] for f in forks.values())} Redis forks in the run "
        f"({sum(f['seconds'] for f in forks.values()):.1f} s in all, the longest fork call "
        f"{longest_fork} ms); {sum(p['pauses'] for p in pauses.values())} GC pauses of the "
        f"brokers, the "
        f"longest {max(p['max_ms'] for p in pauses.values()):.0f} ms; the machine "
        f"{busy:.2f} cores busy on average, {others:.2f} of them by processes outside the "
        f"run. From [`{path.relative_to(path.parents[1])}`](../benchmarks/results/chaos/"
        f"{path.relative_to(path.parents[1])}) ({report['started'][:16].replace('T', ' ')} UTC, "
        f"commit {report['commit'][:7]}, load average "
        f"{r['load_average_during']['mean']} on average during it).")
    return "\n".join(lines)


def soak_start_table(folder: Path) -> str:
    """The soak's load without faults, before and after a change, run in turns: each subfolder
    of `folder` is one code (its name in the first column), each JSON in it one run."""
    runs = runs_in_turns(folder, "*.json")
    lines = ["| code | started (UTC) | load average (start / mean) | misses | in the first "
             "10 s (ingest / fraud / recommender) | p99 of the first second | later: cores "
             "saturated / other work / GC pause / unexplained | first 10 s: cores busy, of "
             "them the brokers | CPU outside the run (mean) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for code, report in runs:
        r = report["results"]
        first = [m for m in r["misses"] if m["sent_s"] < START_S]
        by = by_cause([{**m, "cause": cause(m, report["machine"]["nproc"])}
                       for m in r["misses"]], ("ingest", "fraud", "recommender"))
        cpu = r["probed"]["cpu_per_second"]
        start = [c for c in cpu if c["t_s"] <= START_S]
        brokers = sum(v for c in start for k, v in c["groups"].items()
                      if k.startswith("kafka-")) / len(start)
        lines.append(
            f"| {code} ({report['commit'][:7]}) | {report['started'][11:19]} | "
            f"{report['machine']['load_average_at_start'][0]:.1f} / "
            f"{r['load_average_during']['mean']} | "
            f"{r['availability']['all']['requests'] - r['availability']['all']['good']} of "
            f"{r['availability']['all']['requests']:,} | {len(first)} ("
            + " / ".join(str(sum(m["service"] == s for m in first))
                         for s in ("ingest", "fraud", "recommender"))
            + f") | {report['per_second'][0]['p99_ms']} ms | "
            + " / ".join(str(sum(by[c].values())) for c in
                         ("cores saturated", "other work on the machine", "kafka gc pause",
                          "unexplained"))
            + f" | {sum(c['busy'] for c in start) / len(start):.2f}, {brokers:.2f} | "
            f"{sum(c['groups']['others'] for c in cpu) / len(cpu):.2f} cores |")
    settings = runs[0][1]["settings"]
    lines.append(turns_footer(runs, "tests/chaos/test_availability_soak.py",
                              f" for {settings['soak_s']:.0f} s, no fault "
                              "(`MLSD_SOAK_FAULTS=0`)"))
    return "\n".join(lines)


def _in_order(folder: Path) -> list[dict[str, Any]]:
    """The reports in `folder`, oldest first."""
    return sorted((json.loads(p.read_text()) for p in folder.glob("*.json")),
                  key=lambda report: str(report["started"]))


def _both_services_load(settings: dict[str, Any]) -> str:
    """The open-loop load a fault test sends fraud and the recommender alike."""
    return (f"{settings['rate_per_service_per_s']:.0f} requests/s to fraud and to the "
            f"recommender each, {settings['duration_s']:.0f} s open loop")


def _redis_version(report: dict[str, Any]) -> str:
    """The version from `redis-server --version` as the report recorded it."""
    return str(report["versions"]["redis_server"].split("v=")[1].split()[0])


def _p50_p99_max(latency: dict[str, Any]) -> str:
    return f"{latency['p50']} / {latency['p99']} / {latency['max']} ms"


def _counts(counts: Mapping[str, int], grouped: bool = False) -> str:
    """Each outcome with how often it came, `1134 x 202, 66 x 503` (grouped: `1,134 x 202`)."""
    return ", ".join(f"{v:,} x {k}" if grouped else f"{v} x {k}" for k, v in counts.items())


def _both_answers(fraud: dict[str, Any], recommender: dict[str, Any]) -> str:
    """Fraud's and the recommender's answers counted together, by status."""
    return _counts(Counter(fraud["statuses"]) + Counter(recommender["statuses"]))


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _turn_cells(code: str, report: dict[str, Any]) -> list[str]:
    """A run in turns' first cells: its code (and commit), when it started, the load average."""
    return [f"{code} ({report['commit'][:7]})", report["started"][11:19],
            f"{report['machine']['load_average_at_start'][0]:.1f}"]


def _fault_2_row(code: str, report: dict[str, Any], cells: list[str]) -> str:
    """A fault 2 run in turns: its first cells, the failover gap, the table's own `cells`, and
    both services' answers."""
    r = report["results"]
    return _row([*_turn_cells(code, report), f"{r['failover_gap_s']} s", *cells,
                 _both_answers(r["fraud"], r["recommender"])])


def _flagged(side: dict[str, Any], flag: str) -> list[str]:
    """A service's answers flagged `flag` (degraded, fallback): of all (share), of the gap's."""
    flagged = side[f"{flag}_answers"]
    return [f"{flagged} of {side['requests']} ({flagged / side['requests']:.0%})",
            f"{side[f'{flag}_answers_in_gap']} of {side['requests_in_gap']}"]


def _table(rows: list[tuple[str, str]], report: dict[str, Any],
           header: tuple[str, str] = ("measure", "outcome")) -> str:
    machine = report["machine"]
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {a} | {b.replace('|', '/')} |" for a, b in rows]
    lines.append(f"\nMeasured {report['started'][:16].replace('T', ' ')} UTC on "
                 f"{machine['nproc']} shared cores ({machine['cpu_model']}), Kafka "
                 f"{report['versions']['kafka']}, Redis {_redis_version(report)}"
                 f"; commit {report['commit'][:10]}; load average "
                 f"{machine['load_average_at_start'][0]:.1f} at the start (other work shares "
                 "the cores).")
    return "\n".join(lines)


def failed_runs_table(folder: Path) -> str:
    """The runs whose promise broke (kept in `failed/`), with the measure that broke it."""
    broker = _load(folder, "broker_crash")["results"]
    redis = _load(folder, "redis_master_crash")["results"]
    rows = [
        ("broker crash, " + broker["victim"] + " killed",
         f"lost {broker['lost']}, but the stream had applied only "
         f"{broker['applied_to_online_features']:,} of {broker['events_on_topic']:,} stored "
         "events 90 s after the load ended; "
         + _counts(broker["statuses"])),
        ("Redis master crash, " + redis["victim"] + " killed",
         f"failover in {redis['failover_gap_s']} s, no 5xx, but fraud answers stayed "
         f"`degraded` to the end of the run ({redis['fraud']['degraded_answers_in_last_5s']} "
         f"in its last 5 s, the last {redis['fraud']['last_degraded_answer_after_kill_s']} s "
         f"after the kill); the recommender's last fallback came "
         f"{redis['recommender']['last_fallback_answer_after_kill_s']} s after the kill"),
    ]
    return _table(rows, _load(folder, "broker_crash"), header=("run", "what broke"))


def _ms(latency: dict[str, Any]) -> str:
    return f"{latency['p50']} / {latency['p99']} ms"


def _fault_row(name: str, report: dict[str, Any]) -> tuple[str, str, str]:
    """One committed report as (fault, what its promise asked, what was measured)."""
    r = report["results"]
    if name == "broker_crash":
        return ("1. broker crash", "lost 0; refusals 503 + Retry-After",
                f"{r['victim']} killed, fenced {r['fenced_after_kill_s']} s after; lost "
                f"**{r['lost']}** of {r['events_acknowledged']:,} acknowledged; "
                + ", ".join(f"{v} x {k}" for k, v in r["statuses"].items())
                + f" ({r['answers_202_spooled']} from the spool); p50 / p99 "
                f"{_ms(r['latency_ms'])}")
    if name == "poison_events":
        return ("5. poison events", "every poison event in its DLQ once per group; good ones "
                "applied", f"**{r['dead_letters_found']} / {r['dead_letters_expected']}** dead "
                f"letters; good events {r['good_events_applied']} / "
                f"{r['good_events_after_poison']} within {r['good_events_applied_within_s']} s")
    if name.startswith("redis_master_crash"):
        f, c = r["fraud"], r["recommender"]
        which = ", the trending list's master" if r["trending_list_on_victim"] else ""
        return (f"2. Redis master crash{which}", "no 5xx; flagged answers in the gap; fraud "
                "inside 50 ms",
                f"{r['victim']} killed, failover {r['failover_gap_s']} s; "
                + ", ".join(f"{v} x {k}" for k, v in
                            (Counter(f["statuses"]) + Counter(c["statuses"])).items())
                + f"; fraud {f['degraded_answers']} `degraded`, the last "
                f"{f['last_degraded_answer_after_kill_s']} s after the kill, p50 / p99 "
                f"{_ms(f['latency_ms'])}, **{100 * f['within_50ms_share']:.1f} % inside 50 ms**;"
                f" the recommender {c['fallback_answers']} with `fallbacks`, the last "
                f"{c['last_fallback_answer_after_kill_s']} s after, p50 / p99 "
                f"{_ms(c['latency_ms'])}")
    if name == "service_crash":
        f, c = r["fraud"], r["recommender"]
        return ("3. worker crash", "no error after one retry",
                f"errors after one retry: fraud **{f['errors_after_retry']}**, the recommender "
                f"**{c['errors_after_retry']}** (first attempts failed: "
                f"{f['first_attempt_errors']}, {c['first_attempt_errors']}); p99 "
                f"{f['latency_ms']['p99']} and {c['latency_ms']['p99']} ms")
    if name == "slow_dependency":
        return ("4. slow dependency", "p99 after the first second: fraud 50 ms, the "
                "recommender 100 ms",
                "; ".join(f"{phase.replace('_', ' ')}: fraud "
                          f"**{r[phase]['fraud']['p99_after_first_1s_ms']}**, the recommender "
                          f"**{r[phase]['recommender']['p99_after_first_1s_ms']}** ms"
                          for phase in ("redis_slow", "model_server_stalled")))
    if name == "scale_up":
        settled = r["seconds_inside_budget_last_20s"]
        return ("load step (autoscaler)", "p99 inside 100 ms in 18 of the last 20 s (else, "
                "under 0.15 idle cores, inconclusive)",
                f"{r['workers_before']} -> {r['workers_after']} workers (the first "
                f"{r['first_step_after_load_step_s']} s after the step); "
                f"**{settled['inside_budget']} of the last {settled['seconds']} s** inside "
                "budget, p99 "
                f"{r['last_20s']['p99']} ms; idle cores after the step "
                f"{r['machine_idle_cores_after_step']}")
    if name == "postgres_failover":
        return ("7. PostgreSQL primary crash", "every decision in PostgreSQL once; the records "
                "service writes again after the failover",
                f"{r['victim']} killed; **{r['decisions_in_postgres']:,}** of "
                f"{r['decisions_on_topic']:,} decisions in PostgreSQL, lost **{r['lost']}**, a "
                f"second row {r['rows_beyond_one_per_transaction']}; writable "
                f"{r['kill_to_writable_s']} s after the kill, the records service writing "
                f"{r['kill_to_records_writing_s']} s after"
                + ("" if r["records_process_alive"] else " (the process ended)"))
    a = r["availability"]
    return ("6. soak, 600 s with faults", f"{100 * r['goal']:.1f} % answered 2xx inside budget",
            f"**{100 * a['all']['share']:.2f} %** ({a['all']['requests'] - a['all']['good']} "
            f"misses of {a['all']['requests']:,}); ingest {100 * a['ingest']['share']:.2f} %, "
            f"fraud {100 * a['fraud']['share']:.2f} %, the recommender "
            f"{100 * a['recommender']['share']:.2f} %")


def merged_run_table(folder: Path) -> str:
    """Every fault's report of one run of the code (`make chaos`, `make soak`), one row each in
    the order they started, with the load average each started at."""
    reports = sorted(((p.stem, json.loads(p.read_text())) for p in folder.glob("*.json")),
                     key=lambda run: str(run[1]["started"]))
    lines = ["| fault | started (UTC) | load average | promise | measured |",
             "|---|---|---|---|---|"]
    for name, report in reports:
        fault, promise, measured = _fault_row(name, report)
        lines.append(f"| {fault} | {report['started'][11:16]} | "
                     f"{report['machine']['load_average_at_start'][0]:.1f} | {promise} | "
                     f"{measured} |")
    first = reports[0][1]
    lines.append(f"\nFrom `{folder.name}/`: commit {first['commit'][:10]}, "
                 f"{first['started'][:10]}, {first['machine']['nproc']} shared cores "
                 f"({first['machine']['cpu_model']}), Kafka {first['versions']['kafka']}, Redis "
                 f"{first['versions']['redis_server'].split('v=')[1].split()[0]}; each under the "
                 "machine's lock for heavy runs (other work shares the cores).")
    return "\n".join(lines)


BROKER_RESTART_AFTER_S = 10.0  # the soak restarts a killed broker this long after the kill


def soak_brokers_table(paths: Sequence[Path]) -> str:
    """Soaks side by side by what the brokers' start costs: the misses in the load's first 10 s
    and beside the broker kills, and the brokers' cores then (the soak's per-second CPU probe):
    all three in the load's first 10 s, and a restarted one in the 10 s from its restart."""
    lines = ["| soak | started (UTC), commit | load average (mean) | availability | misses "
             "| in the load's first 10 s | beside a broker kill | beside the other faults "
             "| the rest | the brokers' cores, load's first 10 s | a restarted broker's "
             "cores, its first 10 s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for path in paths:
        report = json.loads(path.read_text())
        r = report["results"]
        misses = r["misses"]
        at_start = [m for m in misses if m["cause"] == "start of load"]
        beside_broker = [m for m in misses if (m["fault"] or "").startswith("kill kafka")]
        other_fault = [m for m in misses if m["fault"] and m not in beside_broker]
        cpu = r["probed"]["cpu_per_second"]
        first = [sum(v for k, v in s["groups"].items() if k.startswith("kafka-"))
                 for s in cpu if s["t_s"] <= START_S]
        restarted = []
        for fault in r["faults"]:
            if fault["what"].startswith("kill kafka"):
                name = fault["what"].removeprefix("kill ")
                begin = fault["at_s"] + BROKER_RESTART_AFTER_S
                restarted += [s["groups"].get(name, 0.0) for s in cpu
                              if begin < s["t_s"] <= begin + START_S]
        share = r["availability"]["all"]["share"]
        rest = len(misses) - len(at_start) - len(beside_broker) - len(other_fault)
        lines.append(
            f"| [`{path.parent.name}/{path.name}`](../benchmarks/results/chaos/"
            f"{path.parent.name}/{path.name}) | {report['started'][11:16]}, "
            f"{report['commit'][:7]} | {r['load_average_during']['mean']:.2f} | "
            f"{share * 100:.2f} % | {len(misses)} | {len(at_start)} | {len(beside_broker)} | "
            f"{len(other_fault)} | {rest} | "
            f"{sum(first) / max(1, len(first)):.2f} | "
            f"{sum(restarted) / max(1, len(restarted)):.2f} |")
    return "\n".join(lines)
