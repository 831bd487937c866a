"""tests/chaos/elections.py reads the KRaft nodes' own logs: which node leads the quorum, and how a
dead controller's successor was voted (lines as Kafka 4.1 writes them, shortened)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from tests.chaos.elections import active_controller, election_after_kill, fencings

LEADER = ("[{at}] INFO [RaftManager id={node}] Completed transition to Leader(localVoterNode="
          "VoterNode(voterKey=ReplicaKey(id={node}, directoryId=x)), epoch={epoch}, "
          "epochStartOffset=151, highWatermark=Optional.empty) from CandidateState(epoch={epoch})"
          " (org.apache.kafka.raft.QuorumState)")
CANDIDATE = ("[{at}] INFO [RaftManager id={node}] Completed transition to CandidateState("
             "localId={node}, epoch={epoch}) (org.apache.kafka.raft.QuorumState)")
FENCED = ("[{at}] INFO [QuorumController id={node}] Fencing broker {victim} at epoch 8 because "
          "its session has timed out. (org.apache.kafka.controller.ReplicationControlManager)")


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_active_controller_is_the_winner_of_the_latest_epoch(tmp_path: Path) -> None:
    logs = {"kafka-1": write(tmp_path / "1.log", LEADER.format(at="2026-12-06 19:19:38,004",
                                                                node=1, epoch=3)),
            "kafka-2": write(tmp_path / "2.log", LEADER.format(at="2026-12-06 19:19:21,730",
                                                                node=2, epoch=1)),
            "kafka-3": write(tmp_path / "3.log", "no election here")}
    assert active_controller(logs) == "kafka-1"


def test_no_winner_logged_means_no_active_controller_known(tmp_path: Path) -> None:
    assert active_controller({"kafka-1": write(tmp_path / "1.log", "starting")}) is None


def test_a_split_vote_shows_as_candidacies_before_the_new_controller(tmp_path: Path) -> None:
    killed = datetime(2026, 12, 6, 19, 19, 35).astimezone()
    survivor_1 = write(tmp_path / "1.log",
                       CANDIDATE.format(at="2026-12-06 19:19:36,555", node=1, epoch=2),
                       CANDIDATE.format(at="2026-12-06 19:19:37,993", node=1, epoch=3),
                       LEADER.format(at="2026-12-06 19:19:38,004", node=1, epoch=3),
                       FENCED.format(at="2026-12-06 19:19:39,054", node=1, victim=2))
    survivor_3 = write(tmp_path / "3.log",
                       CANDIDATE.format(at="2026-12-06 19:19:36,555", node=3, epoch=2))
    found = election_after_kill([survivor_1, survivor_3], 2, killed,
                                killed + timedelta(seconds=10))
    assert found["controller_elected_after_kill_s"] == 3.0
    assert found["controller_candidacies"] == 3
    assert found["fenced_after_kill_s"] == 4.05
    assert found["fencings_while_down"] == 1


def test_every_fencing_of_a_run_is_found_once_whichever_log_has_it(tmp_path: Path) -> None:
    line = FENCED.format(at="2026-12-06 19:19:39,054", node=1, victim=2)
    logs = [write(tmp_path / "1.log", line, line.replace("broker 2", "broker 3")),
            write(tmp_path / "2.log", "no fencing here")]
    start = datetime(2026, 12, 6, 19, 0).astimezone()
    found = fencings(logs, start, start + timedelta(hours=1))
    assert [broker for _, broker in found] == [2, 3]
