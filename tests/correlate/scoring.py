"""Score reconstructed calls against a synthesized trace's ground truth."""

from __future__ import annotations

from rpctrace.correlate import call_record
from rpctrace.model import iso_to_ticks


def key_of_truth(t: dict) -> tuple:
    return (t["client"]["pid"], t["client"]["tid"], t["start"])


def score(calls, trace, truth: dict) -> dict:
    """Precision: share of reported calls (with a server side) that are right in every joined
    fact; recall: share of true calls reported right.  Parent links are checked separately."""
    records = [call_record(c, trace) for c in calls]
    truth_calls = truth["calls"]
    by_key = {key_of_truth(t): t for t in truth_calls}
    by_msg: dict[tuple, list[dict]] = {}
    by_server: dict[tuple, dict] = {}
    for t in truth_calls:
        by_msg.setdefault((t["client"]["pid"], t["client"]["tid"], t["alpc_message_id"]), []).append(t)
        if t.get("server_start"):
            by_server[(t["server"]["pid"], t["server"]["tid"], t["server_start"])] = t

    def find(r: dict) -> dict | None:
        t = by_key.get((r["client"]["pid"], r["client"]["tid"], r["start"]))
        if t is not None:
            return t
        if r.get("server_start"):
            t = by_server.get((r["server"]["pid"], r["server"]["tid"], r["server_start"]))
            if t is not None:
                return t
        # the client's RPC start event was lost: the call starts at its ALPC send instead
        start = iso_to_ticks(r["start"]) if r["start"] else None
        for t in by_msg.get((r["client"]["pid"], r["client"]["tid"], r["alpc_message_id"]), []):
            if start is not None and iso_to_ticks(t["start"]) <= start <= iso_to_ticks(t["end"] or t["start"]) + 10_000_000:
                return t
        return None

    truth_id_to_ours: dict[int, int] = {}
    right = wrong = 0
    wrong_examples = []
    for r in records:
        if r["server"]["pid"] is None or r["client"]["pid"] is None:
            continue  # a one-sided call claims no pairing: it counts as missing, not wrong
        t = find(r)
        ok = (
            t is not None
            and r["server"]["pid"] == t["server"]["pid"]
            and r["server"]["tid"] == t["server"]["tid"]
            and (r["interface"]["uuid"] is None or r["interface"]["uuid"] == t["interface"])
            and (r["opnum"] is None or r["opnum"] == t["opnum"])
            and (r["alpc_message_id"] is None or t["alpc_message_id"] is None or r["alpc_message_id"] == t["alpc_message_id"])
        )
        if ok:
            right += 1
            truth_id_to_ours[t["id"]] = r["id"]
        else:
            wrong += 1
            if len(wrong_examples) < 5:
                wrong_examples.append((r, t))
    reported = right + wrong
    ours_parent = {r["id"]: r["parent"] for r in records}
    parent_links = [t for t in truth_calls if t["parent"] is not None]
    parents_right = sum(
        1 for t in parent_links
        if t["id"] in truth_id_to_ours and t["parent"] in truth_id_to_ours
        and ours_parent[truth_id_to_ours[t["id"]]] == truth_id_to_ours[t["parent"]]
    )
    return {
        "truth": len(truth_calls),
        "reported": reported,
        "right": right,
        "precision": right / reported if reported else 1.0,
        "recall": right / len(truth_calls) if truth_calls else 1.0,
        "parent_links": len(parent_links),
        "parents_right": parents_right,
        "wrong_examples": wrong_examples,
        "by_truth_id": truth_id_to_ours,
        "records": {r["id"]: r for r in records},
    }
