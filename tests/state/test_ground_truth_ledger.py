"""The ground-truth ledger's tables on both backends: rows by key and time, claims, quarantined files, rows re-read."""

from __future__ import annotations

from monitoring.state.ground_truth_ledger import READ, Entry, GroundTruthLedger
from monitoring.state.store import StateStore

CRN = "crn-1"


def _entry(uuid: str, key: str, at: int, label: str = "Yes") -> Entry:
    return Entry(uuid, CRN, at - 1_000, "final_label", label, f"row of {key}", "", "run-1", key, at)


def test_a_posted_rows_key_and_time_find_its_entry_and_a_claim_is_taken_once(store_url):
    with StateStore(store_url) as store:
        ledger = GroundTruthLedger(store.db, "churn")
        recorded = ledger.record_intents([_entry("u1", "AC-1", 5_000), _entry("u2", "AC-2", 6_000)], 10)
        assert [e.uuid for e in recorded] == ["u1", "u2"]
        assert ledger.record_intents([_entry("u1", "AC-1", 5_000, "No")], 11) == []  # one row per prediction
        found = ledger.by_key_and_time([("AC-1", 5_000), ("AC-1", 7_000), ("AC-3", 5_000)])
        assert list(found) == [("AC-1", 5_000)] and found["AC-1", 5_000].label == "Yes"
        intents = ledger.unfinished(before_ms=100, limit=10)
        assert [e.uuid for e in ledger.claim_unfinished(intents, "run-2", 100, 1_000)] == ["u1", "u2"]
        assert ledger.claim_unfinished(intents, "run-3", 100, 1_001) == []  # claimed: recent now, run-2's
        assert ledger.unfinished(before_ms=100, limit=10) == []


def test_a_quarantined_file_is_left_alone_until_it_or_the_columns_asked_for_change(store_url):
    with StateStore(store_url) as store:
        ledger = GroundTruthLedger(store.db, "churn")
        needs = "customer_id,failed,closed_at"
        assert ledger.file_state("crm/a.csv", 10, 1, needs) is None
        ledger.quarantine("crm/a.csv", 10, 1, "cannot be read as csv: not UTF-8 text", needs, 100)
        assert ledger.file_state("crm/a.csv", 10, 1, needs) == "cannot be read as csv: not UTF-8 text"
        assert ledger.file_state("crm/a.csv", 12, 2, needs) is None  # re-exported: read again
        assert ledger.file_state("crm/a.csv", 10, 1, "account,failed,closed_at") is None  # the config changed
        ledger.mark_files_read([("crm/a.csv", 12, 2)], 200)
        assert ledger.file_state("crm/a.csv", 12, 2, needs) == READ


def test_rows_read_within_the_lateness_allowance_are_known_until_they_fall_behind_it(store_url):
    with StateStore(store_url) as store:
        ledger = GroundTruthLedger(store.db, "churn")
        ledger.see_rows([("d1", 1_000), ("d2", 2_000)], 50)
        ledger.see_rows([("d2", 2_000), ("d3", 3_000)], 60)  # seen again: kept once
        assert ledger.seen_rows(["d1", "d3", "d4"]) == {"d1", "d3"}
        assert ledger.forget_rows(2_000) == 1
        assert ledger.seen_rows(["d1", "d2", "d3"]) == {"d2", "d3"}
        assert GroundTruthLedger(store.db, "other").seen_rows(["d2"]) == set()  # per model
